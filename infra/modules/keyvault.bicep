// Key Vault in RBAC mode (soft delete, purge protection) holding huntwire's secrets: the Teams
// Workflows webhook URL and the health-notice webhook URL (written here on every provision:
// the azd environment is the source of truth, rotate by re-provisioning, docs/deploy.md) and
// the HMAC key of snooze links (written by snooze-key.bicep only when it is created or rotated).
// The function app reads each through a versionless Key Vault reference resolved with its
// user-assigned identity.
param name string
param location string = resourceGroup().location
param tags object = {}
param teamsWebhookSecretName string

@secure()
@minLength(1)
@description('Teams Workflows webhook URL (it embeds its own signature, so it is a credential).')
param teamsWebhookUrl string

param healthWebhookSecretName string

@secure()
@description('Webhook URL for health notices; empty: the Teams webhook URL is stored instead.')
param healthWebhookUrl string = ''

param snoozeKeySecretName string

@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Deny-by-default needs VNet integration; without it, Key Vault references are resolved from App Service's shared outbound addresses and App Service is not a trusted service for them (docs/deploy.md, differences).
  // checkov:skip=CKV_AZURE_189: Same reason: the vault must stay reachable from the non-VNet-integrated app; access is Entra ID + RBAC only, the identity holds Secrets User on this vault alone.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource teamsWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: A Teams Workflows URL has no expiry of its own; an arbitrary exp would only silence alerting when it lapses. Rotation is documented in docs/deploy.md.
  parent: vault
  name: teamsWebhookSecretName
  properties: {
    value: teamsWebhookUrl
    contentType: 'text/plain'
  }
}

// Always declared (checkov skips conditional resources): without a health webhook of its own
// the secret holds the Teams webhook URL, which is also what the code falls back to.
resource healthWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: A Teams Workflows URL has no expiry of its own; an arbitrary exp would only silence alerting when it lapses. Rotation is documented in docs/deploy.md.
  parent: vault
  name: healthWebhookSecretName
  properties: {
    value: empty(healthWebhookUrl) ? teamsWebhookUrl : healthWebhookUrl
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// Versionless: the app follows the latest version after a rotation.
output teamsWebhookSecretUri string = '${vault.properties.vaultUri}secrets/${teamsWebhookSecretName}'
output healthWebhookSecretUri string = '${vault.properties.vaultUri}secrets/${healthWebhookSecretName}'
output snoozeKeySecretUri string = '${vault.properties.vaultUri}secrets/${snoozeKeySecretName}'
