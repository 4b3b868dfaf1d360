// The huntwire function app on Flex Consumption: Python 3.11, user-assigned identity for
// everything (deployment package, host storage, Key Vault reference, telemetry, huntwire's own
// clients), HTTPS only, TLS 1.2, basic publishing credentials (FTP and SCM) off. Flex
// Consumption has no FTP at all and rejects siteConfig.ftpsState (BadRequest 51021).
param name string
param location string = resourceGroup().location
param tags object = {}
param serviceName string = 'api'
param appServicePlanId string
param runtimeName string = 'python'
param runtimeVersion string = '3.11'
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 100
param storageAccountName string
param deploymentStorageContainerName string
param enableBlob bool = true
param enableQueue bool = true
param identityId string
param identityClientId string
param applicationInsightsName string

@description('Versionless Key Vault secret URI of the Teams webhook URL.')
param teamsWebhookSecretUri string
@description('Versionless Key Vault secret URI of the health-notice webhook URL.')
param healthWebhookSecretUri string

@description('Versionless Key Vault secret URI of the snooze-link HMAC key.')
param snoozeKeySecretUri string

@description('Entra ID tenant of the Defender and Sentinel portals the cards link to.')
param tenantId string
param huntSchedule string = '0 0 * * * *'
param graphEndpoint string = 'https://graph.microsoft.com'
param logsEndpoint string = 'https://api.loganalytics.io'

@description('Customer id (GUID) of the Sentinel workspace; empty leaves the setting out.')
param sentinelWorkspaceId string = ''

@description('ARM resource id of the Sentinel workspace (for the card link to Sentinel Logs); empty leaves the setting out.')
param sentinelWorkspaceResourceId string = ''

@description('UTC hour of the daily heartbeat card, or off.')
param heartbeatHour string = '8'

@description('How close in time findings must be to join one incident (e.g. 2h).')
param incidentWindow string = '2h'

@description('Most incident posts a run makes before it posts one summary instead.')
param incidentStormLimit int = 10

@description('Base URL of the function app for snooze links; empty leaves the setting out.')
param publicUrl string = ''

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Platform settings, as the Flex template sets them: identity-based AzureWebJobsStorage with
// per-service URIs, and App Insights with Entra ID auth. Flex Consumption takes the runtime
// from functionAppConfig, so FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are not set.
// (Plain name/value arrays rather than map(items(...)): checkov's parser, pycep, knows neither.)
var platformSettings = concat([
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
], enableBlob ? [
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: stg.properties.primaryEndpoints.blob
  }
] : [], enableQueue ? [
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: stg.properties.primaryEndpoints.queue
  }
] : [])

// The settings huntwire's code reads (shared/settings.APP_SETTING_NAMES), and nothing else:
// - HUNTWIRE_STORAGE (a connection string) is for local runs only;
// - HUNTWIRE_HUNTS_DIR and HUNTWIRE_SUPPRESSIONS_DIR stay unset: the code defaults to the
//   hunts/ and suppressions/ folders shipped in the package;
// - no HUNTWIRE_STORAGE__credential/__clientId: the code is not a Functions binding; it builds
//   its table client from HUNTWIRE_STORAGE__tableServiceUri and the identity in AZURE_CLIENT_ID.
// tests/test_infra.py keeps this list and the code's in step.
var huntwireSettings = concat([
  {
    name: 'HUNTWIRE_SCHEDULE'
    value: huntSchedule
  }
  {
    name: 'HUNTWIRE_GRAPH_ENDPOINT'
    value: graphEndpoint
  }
  {
    name: 'HUNTWIRE_LOGS_ENDPOINT'
    value: logsEndpoint
  }
  {
    name: 'HUNTWIRE_STORAGE__tableServiceUri'
    value: stg.properties.primaryEndpoints.table
  }
  {
    name: 'HUNTWIRE_TEAMS_WEBHOOK_URL'
    value: '@Microsoft.KeyVault(SecretUri=${teamsWebhookSecretUri})'
  }
  {
    name: 'HUNTWIRE_HEALTH_WEBHOOK_URL'
    value: '@Microsoft.KeyVault(SecretUri=${healthWebhookSecretUri})'
  }
  {
    name: 'HUNTWIRE_SNOOZE_KEY'
    value: '@Microsoft.KeyVault(SecretUri=${snoozeKeySecretUri})'
  }
  {
    name: 'HUNTWIRE_TENANT_ID'
    value: tenantId
  }
  {
    name: 'HUNTWIRE_HEARTBEAT_HOUR'
    value: heartbeatHour
  }
  {
    name: 'HUNTWIRE_INCIDENT_WINDOW'
    value: incidentWindow
  }
  {
    name: 'HUNTWIRE_INCIDENT_STORM_LIMIT'
    value: string(incidentStormLimit)
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
], !empty(sentinelWorkspaceId) ? [
  {
    name: 'HUNTWIRE_SENTINEL_WORKSPACE_ID'
    value: sentinelWorkspaceId
  }
  {
    name: 'HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID'
    value: sentinelWorkspaceResourceId
  }
] : [], !empty(publicUrl) ? [
  {
    name: 'HUNTWIRE_PUBLIC_URL'
    value: publicUrl
  }
] : [])

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: azd deploys through the app's public SCM endpoint (Entra ID token, basic auth off); closing it needs VNet + private endpoint. The app has no HTTP triggers, only a timer.
  // checkov:skip=CKV_AZURE_17: Incoming client certificates protect HTTP callers; huntwire has none (timer trigger only).
  // checkov:skip=CKV_AZURE_212: numberOfWorkers does not apply to Flex Consumption (scale is functionAppConfig.scaleAndConcurrency), and the timer runs as a singleton.
  // checkov:skip=CKV_AZURE_78: FTP(S) does not exist on Flex Consumption, and Azure rejects siteConfig.ftpsState there ("Site.SiteConfig.FtpsState for Flex Consumption sites is invalid", BadRequest 51021); FTP publishing credentials are disabled below.
  // checkov:skip=CKV_AZURE_213: Health check probes an HTTP path; a timer-only app has none to probe.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: appServicePlanId
    httpsOnly: true
    clientCertEnabled: false
    // Resolve @Microsoft.KeyVault(...) with the user-assigned identity, not a system one.
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: concat(platformSettings, huntwireSettings)
    }
  }
}

// No basic-auth publishing: azd deploys with an Entra ID token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output id string = functionApp.id
