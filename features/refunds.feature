@terminal:card_presentation
Feature: Refunds on the terminal
  A customer brings back part of an order, or all of it. The cashier refunds on the terminal
  that took the payment. The gateway never gives back more than it captured.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"
    And the store "Shibuya" has a terminal "Counter 1"
    And the customer paid ¥1,200 with the approved Visa card on the terminal

  Scenario: A partial refund
    When the cashier refunds ¥500 of the payment on the terminal
    Then the refund is approved for ¥500
    And the gateway shows the payment as partially refunded
    And the gateway shows ¥700 of the payment left to refund

  Scenario: A full refund
    When the cashier refunds the whole payment on the terminal
    Then the refund is approved for ¥1,200
    And the gateway shows the payment as fully refunded
    And the gateway shows ¥0 of the payment left to refund

  Scenario: Two partial refunds add up to the whole payment
    When the cashier refunds ¥200 of the payment on the terminal
    Then the refund is approved for ¥200
    When the cashier refunds the whole payment on the terminal
    Then the refund is approved for ¥1,000
    And the gateway shows the payment as fully refunded

  Scenario: Refunding more than was paid is refused
    When the cashier refunds ¥2,000 of the payment on the terminal
    Then the refund is refused because it is more than is left to refund
    And the gateway shows the payment as captured
    And the gateway shows ¥1,200 of the payment left to refund

  Scenario: Refunding more than is left after a partial refund is refused
    When the cashier refunds ¥500 of the payment on the terminal
    Then the refund is approved for ¥500
    When the cashier refunds ¥800 of the payment on the terminal
    Then the refund is refused because it is more than is left to refund
    And the gateway shows ¥700 of the payment left to refund
