Feature: Card payment at the counter
  A cashier of Ramen Ichiban rings up a sale on the SmartPOS terminal; the customer pays with a
  card. The terminal must say plainly what happened, and the gateway must agree: money is
  captured only for an approved payment, and never twice.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"
    And the store "Shibuya" has a terminal "Counter 1"

  @terminal:card_presentation
  Scenario: A contactless Visa payment is approved
    When the cashier charges ¥1,200 on the terminal
    And the customer taps the approved Visa card
    Then the payment is approved
    And the terminal shows ¥1,200 charged
    And the result shows only the card's brand and last four digits
    And the gateway records the payment as captured for ¥1,200

  @terminal:card_presentation @terminal:own_terminals
  Scenario: The gateway files the payment under the terminal's store
    When the cashier charges ¥700 on the terminal
    And the customer taps the approved Visa card
    Then the payment is approved
    And the payment belongs to the store "Shibuya" and the terminal

  @terminal:card_presentation
  Scenario Outline: Every brand, every way of presenting the card
    When the cashier charges <amount> on the terminal
    And the customer <presents> the <card>
    Then the payment is approved
    And the card was read by "<entry mode>"
    And the result shows only the card's brand and last four digits
    And the gateway records the payment as captured for <amount>

    Examples:
      | amount  | presents | card                     | entry mode  |
      | ¥1,200  | taps     | approved Mastercard card | contactless |
      | ¥880    | inserts  | approved JCB card        | chip        |
      | ¥15,000 | swipes   | approved Amex card       | swipe       |
      | ¥1      | inserts  | approved Visa card       | chip        |

  @terminal:card_presentation
  Scenario Outline: A declined card says why, and nothing is charged
    When the cashier charges ¥1,200 on the terminal
    And the customer taps the <card>
    Then the payment is declined for "<reason>"
    And the gateway records the payment as declined for "<reason>"

    Examples:
      | card                                    | reason             |
      | declined Visa card (generic decline)    | generic decline    |
      | declined Visa card (insufficient funds) | insufficient funds |
      | declined Visa card (lost card)          | lost card          |
      | declined Visa card (stolen card)        | stolen card        |
      | declined Visa card (expired card)       | expired card       |
      | declined Visa card (processing error)   | processing error   |
      | declined Visa card (do not honor)       | do not honor       |

  @terminal:card_presentation
  Scenario: A card that asks for a PIN is approved with the right PIN
    When the cashier charges ¥3,000 on the terminal
    And the customer inserts the Visa PIN card
    Then the terminal asks for the customer's PIN
    When the customer enters the PIN 1234
    Then the payment is approved
    And the gateway records the payment as captured for ¥3,000

  @terminal:card_presentation
  Scenario: A wrong PIN is declined
    When the cashier charges ¥3,000 on the terminal
    And the customer inserts the Visa PIN card
    And the customer enters the PIN 9999
    Then the payment is declined for "incorrect PIN"
    And the gateway records the payment as declined for "incorrect PIN"

  @terminal:card_presentation
  Scenario: The wrong-PIN card is declined whatever PIN is typed
    When the cashier charges ¥3,000 on the terminal
    And the customer inserts the Visa wrong-PIN card
    And the customer enters the PIN 1234
    Then the payment is declined for "incorrect PIN"

  @terminal:card_presentation
  Scenario: The customer cancels on the card screen
    When the cashier charges ¥1,200 on the terminal
    And the customer presses Cancel on the card screen
    Then the payment is cancelled by the customer
    And the gateway records no payment from the terminal

  Scenario: No card comes before the card screen gives up
    When the cashier charges ¥1,200 on the terminal, which waits 5 seconds for the card
    And the customer presents no card
    Then the payment times out waiting for the card
    And the gateway records no payment from the terminal
