@terminal:own_terminals
Feature: Terminal onboarding
  A new SmartPOS terminal arrives at the Shibuya store. The store manager registers it in the
  portal and reads the one-time activation code to the person at the counter, who types it on
  the terminal. The terminal then holds its own key and gets device tokens by itself. A wrong
  code, or a code already used by another terminal, must be refused without enrolling anything.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"
    And "Kenji" is a store manager at the store "Shibuya"

  Scenario: A new terminal is registered, activated and gets its first token
    When "Kenji" registers the terminal "Counter 1" at the store "Shibuya"
    Then the portal hands out a one-time activation code for it
    And the portal shows the terminal "Counter 1" as pending
    When the terminal "Counter 1" is switched on
    Then the terminal asks for its activation code
    When the person at the counter enters the terminal's activation code
    Then the terminal is activated
    And the portal shows the terminal "Counter 1" as active
    And the terminal obtains its first access token

  @terminal:card_presentation
  Scenario: A freshly activated terminal takes its first payment
    Given the terminal "Counter 1" is registered at the store "Shibuya"
    When the terminal "Counter 1" is switched on
    And the person at the counter enters the terminal's activation code
    Then the terminal is activated
    When the cashier charges ¥500 on the terminal
    And the customer taps the approved Visa card
    Then the payment is approved
    And the payment belongs to the store "Shibuya" and the terminal

  Scenario: A mistyped activation code is refused
    Given the terminal "Counter 1" is registered at the store "Shibuya"
    When the terminal "Counter 1" is switched on
    And the person at the counter enters the activation code "WRONG-CODE-1234"
    Then the terminal refuses the activation: "The activation code is not valid."
    And the portal shows the terminal "Counter 1" as pending
    When the person at the counter enters the terminal's activation code
    Then the terminal is activated

  Scenario: An activation code already used by another terminal is refused
    Given the store "Shibuya" has a terminal "Counter 1"
    And the terminal "Counter 2" is registered at the store "Shibuya"
    When the terminal "Counter 2" is switched on
    And the person at the counter enters the activation code of the terminal "Counter 1"
    Then the terminal refuses the activation: "The activation code was already used."
    And the portal shows the terminal "Counter 2" as pending
    And the portal shows the terminal "Counter 1" as active
