@terminal:card_presentation
Feature: A lost answer never charges twice
  The Business App may lose the Credit Card App's answer — a crash, a dropped ADB link, a killed
  process. It then sends the same request again, with the same request id; the customer must be
  charged once, and the answer must be the first one.

  Background:
    Given a terminal ready to take payments
    When the cashier charges ¥1,200 on the terminal
    And the customer taps the approved Visa card
    Then the payment is approved

  Scenario: The same request again answers the same payment
    When the answer is lost and the Business App sends the same request again
    Then the terminal answers with the same payment
    And the gateway holds exactly one payment for the sale

  @terminal:force_stop
  Scenario: After the Credit Card App was killed, the same request still answers the same payment
    When the Credit Card App is killed
    And the answer is lost and the Business App sends the same request again
    Then the terminal answers with the same payment
    And the gateway holds exactly one payment for the sale
