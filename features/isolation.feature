@terminal:own_terminals @terminal:card_presentation
Feature: Stores do not see each other's payments
  Ramen Ichiban has two stores. A cashier of Shibuya sees Shibuya's payments and nothing of
  Shinjuku's: not in a list, not by id, not by naming Shinjuku in the query.

  Background:
    Given the merchant "Ramen Ichiban" with the stores "Shibuya" and "Shinjuku"
    And "Aiko" is a cashier at the store "Shibuya"
    And the store "Shibuya" has a terminal "Shibuya 1"
    And the store "Shinjuku" has a terminal "Shinjuku 1"

  Scenario: A cashier sees their own store's payment
    Given the customer paid ¥1,200 with the approved Visa card on the terminal "Shibuya 1"
    Then "Aiko" can see the payment

  Scenario: A cashier of one store cannot see another store's payment
    Given the customer paid ¥2,400 with the approved Visa card on the terminal "Shinjuku 1"
    Then "Aiko" cannot see the payment
    And "Aiko" cannot list the payments of the store "Shinjuku"
