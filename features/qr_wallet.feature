@backend:provider_control
Feature: QR wallet payment
  The customer pays with a wallet app: the terminal shows a QR code, the wallet pays the
  provider, and the provider's webhook completes the payment at the gateway. Webhooks come at
  least once and in any order: a repeated or late one must change nothing.

  The emulated Credit Card App takes cards only, so the QR payment is started by a device
  enrolled at the HTTP level; the wallet is the simulated provider's own API.

  Background:
    Given the merchant "Ramen Ichiban" with a store "Shibuya"
    And a device enrolled as the terminal "Counter 7" at the store "Shibuya"
    When the device starts a QR wallet payment of ¥800
    Then the customer is shown a QR code to scan

  Scenario: The wallet pays and the webhook completes the payment
    When the customer pays with their wallet app
    Then the gateway shows the payment captured for ¥800 once the webhook came

  Scenario: The wallet declines
    When the customer's wallet app declines the payment
    Then the gateway shows the payment as declined

  Scenario: The same webhook delivered twice completes the payment once
    When the customer pays with their wallet app
    Then the gateway shows the payment captured for ¥800 once the webhook came
    When the provider sends the same webhook again
    Then the gateway acknowledges it and leaves the payment as it was
    And the gateway shows the payment captured for ¥800 once the webhook came

  @backend:operator
  Scenario: A late expiry after the payment changes nothing
    When the customer pays with their wallet app
    Then the gateway shows the payment captured for ¥800 once the webhook came
    When a late "qr_payment.expired" webhook for the payment reaches the gateway
    Then the gateway acknowledges it and leaves the payment as it was
    And the gateway shows the payment as captured
