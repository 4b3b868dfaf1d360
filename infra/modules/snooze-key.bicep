// The HMAC key that signs snooze links, as a Key Vault secret. Deployed by main.bicep only when
// the key does not exist yet or a rotation is asked for (snoozeKeyProvisioned / rotateSnoozeKey):
// Bicep cannot read a secret and then decide, so the decision is made from the azd environment,
// which remembers the HUNTWIRE_SNOOZE_KEY_PROVISIONED output of the last provision. Every write
// invalidates every snooze link already posted, so a plain `azd provision` must not write it.
// A module of its own so that checkov still checks the secret (it skips conditional resources).
param vaultName string
param secretName string

@secure()
@minLength(32)
@description('HMAC key that signs snooze links.')
param snoozeKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource snoozeKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: An expiry would not rotate the snooze key, only break every posted snooze link when it lapses; the key is rotated on request (rotateSnoozeKey, docs/deploy.md).
  parent: vault
  name: secretName
  properties: {
    value: snoozeKey
    contentType: 'text/plain'
  }
}

output secretUri string = '${vault.properties.vaultUri}secrets/${secretName}'
