Feature: Device authentication
  A terminal proves who it is with a key only it holds: it signs a short-lived assertion and
  the portal gives it a device token. An assertion sent twice, a token past its expiry, or a
  terminal the store manager suspended must all be refused.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"

  Scenario: A replayed assertion is refused
    Given a device enrolled as the terminal "Counter 7" at the store "Shibuya"
    When the device asks the portal for a token
    Then the portal gives the device a token
    When the device sends the same assertion again
    Then the portal refuses the device: "assertion_replayed"

  @backend:operator
  Scenario: An expired device token is refused by the gateway
    Given a device enrolled as the terminal "Counter 7" at the store "Shibuya"
    When the device pays ¥1,200 with the approved Visa card using a token that expired two minutes ago
    Then the gateway refuses the device: "token_expired"
    And the gateway records no payment from the device

  @terminal:own_terminals @terminal:card_presentation
  Scenario: A suspended terminal takes no payment and gets no new token
    Given "Kenji" is a store manager at the store "Shibuya"
    And the store "Shibuya" has a terminal "Counter 1"
    When "Kenji" suspends the terminal "Counter 1" in the portal
    Then the portal shows the terminal "Counter 1" as suspended
    And the gateway learns that the terminal is suspended
    When the cashier charges ¥1,200 on the terminal
    And the customer taps the approved Visa card
    Then the payment is refused because the terminal is not active
    And the gateway records no payment from the terminal
    And the portal refuses the terminal a new token because it is suspended
