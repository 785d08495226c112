Feature: Void before capture
  An order taken by phone was authorized but not yet captured; the customer cancels it. The
  cashier voids the authorization on the terminal, and the customer is never charged.

  The Credit Card App always captures a payment at once (its PAYMENT has no authorize-only
  option), so the authorization is taken through the gateway's API by the store manager; the
  void itself is the terminal's VOID.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"
    And "Kenji" is a store manager at the store "Shibuya"
    And the store "Shibuya" has a terminal "Counter 1"

  @terminal:own_terminals
  Scenario: An authorization is voided before it is captured
    Given "Kenji" took an authorization of ¥4,500 with the approved Visa card at the store "Shibuya", not captured yet
    When the cashier voids the payment on the terminal
    Then the void is approved
    And the gateway shows the payment as voided
    And the gateway shows nothing captured for the payment

  @terminal:card_presentation
  Scenario: A captured payment cannot be voided
    Given the customer paid ¥1,200 with the approved Visa card on the terminal
    When the cashier voids the payment on the terminal
    Then the void is refused because the payment is already captured
    And the gateway shows the payment as captured
