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
param maximumInstanceCount int = 40
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

@description('Base URL for snooze links (a custom domain or a front door); empty: https:// and the site\'s default host name.')
param publicUrl string = ''
@description('in-process or queue (docs/fanout.md).')
param fanoutMode string = 'in-process'
@description('Hunts one invocation queries at once (docs/scale.md).')
param workers int = 4

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Platform settings, as the Flex template sets them: identity-based AzureWebJobsStorage with
// per-service URIs, and App Insights with Entra ID auth. Flex Consumption takes the runtime
// from functionAppConfig, so FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are not set.
// (Plain objects joined with union() rather than map()/lambdas: checkov's parser, pycep, knows
// no lambdas.)
var platformSettings = union({
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}, enableBlob ? {
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
} : {}, enableQueue ? {
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
} : {})

// Snooze links point here: the override, else the site's own default host name (known only
// once the site exists, which is why the settings are a child resource of the site).
var publicBaseUrl = empty(publicUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicUrl

// The settings huntwire's code reads (shared/settings.APP_SETTING_NAMES), and nothing else:
// - HUNTWIRE_STORAGE (a connection string) is for local runs only;
// - HUNTWIRE_HUNTS_DIR and HUNTWIRE_SUPPRESSIONS_DIR stay unset: the code defaults to the
//   hunts/ and suppressions/ folders shipped in the package;
// - the code builds its table and queue clients from HUNTWIRE_STORAGE__tableServiceUri /
//   __queueServiceUri and the identity in AZURE_CLIENT_ID; __credential and __clientId are for
//   the Functions host, whose queue triggers (connection "HUNTWIRE_STORAGE") use the same
//   identity-based connection.
// tests/test_infra.py keeps this list and the code's in step.
var huntwireSettings = union({
  HUNTWIRE_SCHEDULE: huntSchedule
  HUNTWIRE_GRAPH_ENDPOINT: graphEndpoint
  HUNTWIRE_LOGS_ENDPOINT: logsEndpoint
  HUNTWIRE_STORAGE__tableServiceUri: stg.properties.primaryEndpoints.table
  HUNTWIRE_STORAGE__queueServiceUri: stg.properties.primaryEndpoints.queue
  HUNTWIRE_STORAGE__credential: 'managedidentity'
  HUNTWIRE_STORAGE__clientId: identityClientId
  HUNTWIRE_FANOUT: fanoutMode
  HUNTWIRE_WORKERS: string(workers)
  HUNTWIRE_TEAMS_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${teamsWebhookSecretUri})'
  HUNTWIRE_HEALTH_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${healthWebhookSecretUri})'
  HUNTWIRE_SNOOZE_KEY: '@Microsoft.KeyVault(SecretUri=${snoozeKeySecretUri})'
  HUNTWIRE_TENANT_ID: tenantId
  HUNTWIRE_HEARTBEAT_HOUR: heartbeatHour
  HUNTWIRE_INCIDENT_WINDOW: incidentWindow
  HUNTWIRE_INCIDENT_STORM_LIMIT: string(incidentStormLimit)
  HUNTWIRE_PUBLIC_URL: publicBaseUrl
  AZURE_CLIENT_ID: identityClientId
}, empty(sentinelWorkspaceId) ? {} : {
  HUNTWIRE_SENTINEL_WORKSPACE_ID: sentinelWorkspaceId
  HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID: sentinelWorkspaceResourceId
})

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Public network access must stay on: the snooze page is an anonymous HTTP function (route /api/snooze) that Teams readers open in their browsers, and azd deploys through the public SCM endpoint (Entra ID token, basic auth off). The signed, expiring token in each link is the authorisation.
  // checkov:skip=CKV_AZURE_17: Client certificates cannot work for the one HTTP function: the snooze page is opened from a Teams card in an ordinary browser, which presents no client certificate; its HMAC-signed link is the authorisation.
  // checkov:skip=CKV_AZURE_212: numberOfWorkers does not apply to Flex Consumption (scale is functionAppConfig.scaleAndConcurrency, capped by maximumInstanceCount), and the timer runs as a singleton under the host's blob lease.
  // checkov:skip=CKV_AZURE_78: FTP(S) does not exist on Flex Consumption, and Azure rejects siteConfig.ftpsState there ("Site.SiteConfig.FtpsState for Flex Consumption sites is invalid", BadRequest 51021); FTP publishing credentials are disabled below.
  // checkov:skip=CKV_AZURE_213: A health check would request a path every minute on every instance: billed executions that keep an instance up for an app that works about a minute an hour. Liveness is watched by the no-run-for-2-hours alert (alerts.bicep) instead.
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
    }
  }
}

// App settings as the site's child resource (as the AVM site module the Flex template uses does
// it): HUNTWIRE_PUBLIC_URL needs the site's defaultHostName, which siteConfig cannot refer to.
// This resource replaces the whole set, so every setting lives here and none in siteConfig.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: checkov applies every Microsoft.Web/sites/config check to every config resource; this is the 'appsettings' config (name/value pairs only), which cannot hold the property checked (authsettings: Easy Auth is not used; the snooze link's HMAC signature is the authorisation).
  // checkov:skip=CKV_AZURE_63: checkov applies every Microsoft.Web/sites/config check to every config resource; this is the 'appsettings' config (name/value pairs only), which cannot hold the property checked (httpLoggingEnabled belongs to the 'web' config; telemetry goes to Application Insights).
  // checkov:skip=CKV_AZURE_65: checkov applies every Microsoft.Web/sites/config check to every config resource; this is the 'appsettings' config (name/value pairs only), which cannot hold the property checked (detailedErrorLoggingEnabled belongs to the 'web' config).
  // checkov:skip=CKV_AZURE_66: checkov applies every Microsoft.Web/sites/config check to every config resource; this is the 'appsettings' config (name/value pairs only), which cannot hold the property checked (requestTracingEnabled belongs to the 'web' config).
  // checkov:skip=CKV_AZURE_80: checkov applies every Microsoft.Web/sites/config check to every config resource; this is the 'appsettings' config (name/value pairs only), which cannot hold the property checked (netFrameworkVersion; the app is Python on Flex Consumption, no .NET).
  // checkov:skip=CKV_AZURE_88: checkov applies every Microsoft.Web/sites/config check to every config resource; this is the 'appsettings' config (name/value pairs only), which cannot hold the property checked (azureStorageAccounts mounts; Flex Consumption has no Azure Files content share).
  // checkov:skip=CKV_AZURE_222: checkov applies every Microsoft.Web/sites/config check to every config resource; this is the 'appsettings' config (name/value pairs only), which cannot hold the property checked (publicNetworkAccess is a site property, skipped on the site with its reason).
  parent: functionApp
  name: 'appsettings'
  properties: union(platformSettings, huntwireSettings)
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
output defaultHostName string = functionApp.properties.defaultHostName
output publicUrl string = publicBaseUrl
