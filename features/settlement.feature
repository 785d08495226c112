@terminal:card_presentation
Feature: End-of-day settlement
  At closing time the cashier closes the terminal's day. The Z-report must count exactly the
  day's settled payments and refunds — a declined card is not takings — and its totals must be
  what the gateway holds.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"
    And the store "Shibuya" has a terminal "Counter 1"
    And the terminal's earlier days are closed

  Scenario: The day's totals match the day's payments
    Given the customer paid ¥1,200 with the approved Visa card on the terminal
    And the customer paid ¥3,300 with the approved JCB card on the terminal
    When the cashier refunds ¥300 of the payment on the terminal
    Then the refund is approved for ¥300
    When the cashier charges ¥990 on the terminal
    And the customer taps the declined Visa card (insufficient funds)
    Then the payment is declined for "insufficient funds"
    When the cashier closes the day on the terminal
    Then the day is closed with 2 payment(s) and 1 refund(s)
    And the day's takings are ¥4,500 gross, ¥300 refunded, ¥4,200 net
    And the day's totals match what the gateway holds for the day's payments

  Scenario: Closing again with nothing new gives an empty report
    Given the customer paid ¥1,200 with the approved Visa card on the terminal
    When the cashier closes the day on the terminal
    Then the day is closed with 1 payment(s) and 0 refund(s)
    When the cashier closes the day on the terminal
    Then the day is closed with 0 payment(s) and 0 refund(s)
    And the day's takings are ¥0 gross, ¥0 refunded, ¥0 net
