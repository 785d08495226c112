@terminal:card_presentation @terminal:own_terminals
Feature: Paying a tab in parts
  Table 4 orders beer and gyoza; the cashier gives ¥100 off and the table adds a ¥300 tip. Two
  friends split the bill equally and pay their parts on the terminal. One card is declined; that
  friend pays the same part again with another card. The tab is paid exactly once per part.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"
    And "Aiko" is a cashier at the store "Shibuya"
    And the store "Shibuya" has a terminal "Counter 1"
    And "Aiko" opens a tab for table "T4"
    And 2 "Draft beer" at ¥583 each are added to the tab
    And 1 "Gyoza" at ¥480 each are added to the tab

  Scenario: A tab with a discount and a tip, split in two, one part declined and paid again
    When a discount of ¥100 is given on the tab
    And a tip of ¥300 is added to the tab
    Then the tab's total is ¥2,000
    When the tab is split into 2 equal parts
    Then the tab's parts are ¥1,000 and ¥1,000
    When part 1 of the tab is charged on the terminal
    And the customer taps the approved Visa card
    Then part 1 of the tab is paid
    When part 2 of the tab is charged on the terminal
    And the customer taps the declined Visa card (insufficient funds)
    Then part 2 of the tab failed for "insufficient funds"
    When part 2 of the tab is charged on the terminal
    And the customer inserts the approved Mastercard card
    Then part 2 of the tab is paid
    And the tab is paid in full
    And the gateway holds 2 captured payment(s) for the tab
