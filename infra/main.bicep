// huntwire: everything the timer-triggered hunt function needs, least-privilege and secret-free.
// Layout and conventions follow Azure-Samples/functions-quickstart-python-azd-timer (subscription
// scope, resource token, abbreviations.json, user-assigned identity, Flex Consumption FC1,
// identity-based AzureWebJobsStorage, rbac module), with native resources instead of AVM
// registry modules so the templates can be checked offline. See docs/deploy.md for the
// deliberate differences.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to generate a short unique hash used in all resource names.')
param environmentName string

@minLength(1)
@description('Primary location for all resources. Must be a region that offers Flex Consumption.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'eastus2euap'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Optional override of the resource group name.')
param resourceGroupName string = ''

@secure()
@minLength(1)
@description('Teams Workflows webhook URL. Stored only as a Key Vault secret; azd prompts for it when HUNTWIRE_TEAMS_WEBHOOK_URL is not set in the azd environment.')
param teamsWebhookUrl string

@secure()
@description('Webhook URL for health notices (failing hunts, heartbeat). Empty: the Teams webhook. Stored only as a Key Vault secret.')
param healthWebhookUrl string = ''

@secure()
@minLength(32)
// checkov:skip=CKV_AZURE_131: The default is not a hardcoded secret: newGuid() makes a fresh random value at each deployment (it is allowed only as a parameter default), and it is written only when the key is first created or rotated on request.
@description('HMAC key that signs snooze links, stored only as a Key Vault secret, written only when snoozeKeyProvisioned is false or rotateSnoozeKey is true. Default: a fresh random value (docs/deploy.md, the snooze key).')
param snoozeKey string = '${newGuid()}${newGuid()}'

@description('Whether the snooze key secret already exists (azd passes back the HUNTWIRE_SNOOZE_KEY_PROVISIONED output of the last provision). True: the secret is left alone, so posted snooze links stay valid.')
param snoozeKeyProvisioned bool = false

@description('Write a new snooze key (snoozeKey) even though one exists: every snooze link posted before stops working. Set it for one provision only.')
param rotateSnoozeKey bool = false

@description('UTC hour (0-23) of the daily heartbeat card, or off.')
param heartbeatHour string = '8'

@description('How close in time findings must be to join one incident (e.g. 2h).')
param incidentWindow string = '2h'

@minValue(1)
@maxValue(1000)
@description('Most incident posts a run makes before it posts one summary card instead.')
param incidentStormLimit int = 10

@allowed([
  'in-process'
  'queue'
])
@description('in-process: the timer runs every due hunt itself (the default, up to a few hundred hunts for one tenant). queue: one Storage queue message per (tenant, due hunt), run by the hunt_worker function and delivered once per tenant (docs/fanout.md).')
param fanoutMode string = 'in-process'

@minValue(1)
@maxValue(64)
@description('Hunts one invocation queries at once; per-tenant Graph and Log Analytics pacing bound it further (docs/scale.md).')
param workers int = 4

@description('Base URL for snooze links when the app is reached through a custom domain or a front door. Empty: https:// and the function app\'s default host name.')
param publicUrl string = ''

@description('NCRONTAB schedule of the hunt timer (six fields, seconds first).')
param huntSchedule string = '0 0 * * * *'

@description('E-mail address that receives the alerts on failed hunt runs and on no run for 2 hours (HUNTWIRE_ALERT_EMAIL). Empty: the alerts fire in the portal only and notify nobody.')
param alertEmail string = ''

@description('Object id of the operator (a user, or an Entra group) who runs huntwire status and suppressions against production: gets Storage Table Data Contributor on the storage account only. Empty: nobody.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Kind of principal operatorPrincipalId is.')
param operatorPrincipalType string = 'User'

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Storage replication. LRS: the account holds rebuildable state only (docs/deploy.md, storage).')
param storageSku string = 'Standard_LRS'

@description('ARM resource id of the Sentinel Log Analytics workspace to hunt in. Empty: no Sentinel hunts, no role assignment.')
param sentinelWorkspaceResourceId string = ''

@description('Grant the identity the Microsoft Graph application permission ThreatHunting.Read.All with the Graph Bicep extension. Needs a deployer allowed to grant Graph app roles (docs/deploy.md).')
param grantGraphPermission bool = false

@description('Microsoft Graph endpoint (change only for sovereign clouds).')
param graphEndpoint string = 'https://graph.microsoft.com'

@description('Log Analytics query endpoint (change only for sovereign clouds).')
param logsEndpoint string = 'https://api.loganalytics.io'

// The hunt timer is a singleton (the host's blob lease). In queue mode the hunt worker scales
// out, but every instance books a tenant's Graph calls from one shared budget (shared/pacing.py),
// so the cap bounds cost, not the service's rate. 40 is the lowest cap Flex Consumption accepts
// (about 0.4 instances per tenant keep every tenant busy: 100 tenants), and it bounds what a
// flood of requests to the anonymous snooze page can cost.
@minValue(40)
@maxValue(1000)
@description('Flex Consumption maximum instance count (docs/deploy.md: why 40).')
param maximumInstanceCount int = 40

@description('Flex Consumption instance memory size in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}huntwire-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
// Every table the code uses (each is also created on first use): the ledger's findings,
// pending and checkpoints, incidents, health records and snoozes. The ledger adds one findings
// table per event day (huntwireFindingsYYYYMMDD) itself; Storage Table Data Contributor lets
// the identity create those. tests/test_infra.py keeps this list and the code's names in step.
var huntwireTableNames = [
  'huntwireFindings'
  'huntwirePending'
  'huntwireCheckpoints'
  'huntwireIncidents'
  'huntwireHealth'
  'huntwireSuppressions'
  'huntwireFanout'
  'huntwirePacing'
]
var teamsWebhookSecretName = 'huntwire-teams-webhook-url'
var healthWebhookSecretName = 'huntwire-health-webhook-url'
var snoozeKeySecretName = 'huntwire-snooze-key'

// Same switches as the template's storageEndpointConfig. The host needs blob (deployment
// package, timer schedule monitor and host locks); queue is granted because the Flex template
// grants it to the host for identity-based AzureWebJobsStorage; huntwire's own code needs table
// (HUNTWIRE_STORAGE__tableServiceUri), which the host does not use.
var storageEndpointConfig = {
  enableBlob: true
  enableQueue: true
  enableTable: true
}

// The Sentinel workspace may live in another subscription and resource group: take both from
// its resource id. The fallbacks keep the scope expression valid when no workspace is given.
var sentinelEnabled = !empty(sentinelWorkspaceResourceId)
var sentinelSubscriptionId = sentinelEnabled ? split(sentinelWorkspaceResourceId, '/')[2] : subscription().subscriptionId
var sentinelResourceGroupName = sentinelEnabled ? split(sentinelWorkspaceResourceId, '/')[4] : rg.name
var sentinelWorkspaceName = sentinelEnabled ? last(split(sentinelWorkspaceResourceId, '/')) : ''

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}huntwire-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentStorageContainerName
    tableNames: huntwireTableNames
    skuName: storageSku
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    teamsWebhookSecretName: teamsWebhookSecretName
    teamsWebhookUrl: teamsWebhookUrl
    healthWebhookSecretName: healthWebhookSecretName
    healthWebhookUrl: healthWebhookUrl
    snoozeKeySecretName: snoozeKeySecretName
  }
}

// Written only when it does not exist yet or a rotation is asked for: every write invalidates
// the snooze links already posted (docs/deploy.md, the snooze key).
var writeSnoozeKey = rotateSnoozeKey || !snoozeKeyProvisioned

module snoozeKeySecret 'modules/snooze-key.bicep' = if (writeSnoozeKey) {
  name: 'snoozeKey'
  scope: rg
  params: {
    vaultName: keyVault.outputs.name
    secretName: snoozeKeySecretName
    snoozeKey: snoozeKey
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    managedIdentityPrincipalId: identity.outputs.principalId
    enableBlob: storageEndpointConfig.enableBlob
    enableQueue: storageEndpointConfig.enableQueue
    enableTable: storageEndpointConfig.enableTable
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module sentinelAccess 'modules/sentinel-access.bicep' = if (sentinelEnabled) {
  name: 'sentinelAccess'
  scope: resourceGroup(sentinelSubscriptionId, sentinelResourceGroupName)
  params: {
    workspaceName: sentinelWorkspaceName
    managedIdentityPrincipalId: identity.outputs.principalId
  }
}

// Kept in its own file: it declares `extension microsoftGraphV1`, which the offline parsers
// (pycep, tree-sitter-bicep) do not know. Needs Bicep >= 0.36.1 and infra/bicepconfig.json.
module graphPermission 'modules/graph-app-role.bicep' = if (grantGraphPermission) {
  name: 'graphAppRole'
  scope: rg
  params: {
    managedIdentityPrincipalId: identity.outputs.principalId
  }
}

// The fan-out's queues (HUNTWIRE_FANOUT=queue, docs/fanout.md); the identity's queue role is
// rbac.bicep's.
module queues 'modules/queues.bicep' = {
  name: 'queues'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
  }
}

module plan 'modules/plan.bicep' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
  }
}

module api 'modules/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    appServicePlanId: plan.outputs.id
    runtimeName: 'python'
    runtimeVersion: '3.11'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    enableBlob: storageEndpointConfig.enableBlob
    enableQueue: storageEndpointConfig.enableQueue
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    teamsWebhookSecretUri: keyVault.outputs.teamsWebhookSecretUri
    healthWebhookSecretUri: keyVault.outputs.healthWebhookSecretUri
    snoozeKeySecretUri: keyVault.outputs.snoozeKeySecretUri
    tenantId: tenant().tenantId
    heartbeatHour: heartbeatHour
    incidentWindow: incidentWindow
    incidentStormLimit: incidentStormLimit
    publicUrl: publicUrl
    huntSchedule: huntSchedule
    graphEndpoint: graphEndpoint
    logsEndpoint: logsEndpoint
    sentinelWorkspaceId: sentinelEnabled ? sentinelAccess.outputs.customerId : ''
    sentinelWorkspaceResourceId: sentinelWorkspaceResourceId
    fanoutMode: fanoutMode
    workers: workers
  }
  // Start the app only once its identity can reach the deployment container, the vault and
  // App Insights (the template leaves this ordering implicit).
  dependsOn: [
    rbac
    snoozeKeySecret
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    functionAppName: api.outputs.name
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    location: location
    tags: tags
    alertEmail: alertEmail
  }
}

// azd writes these outputs into .azure/<env>/.env.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
// For the operator's CLI: HUNTWIRE_STORAGE__tableServiceUri (docs/deploy.md).
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
// Base URL of the snooze links (HUNTWIRE_PUBLIC_URL in the app).
output SERVICE_API_URI string = api.outputs.publicUrl
// The snooze key secret exists after every successful provision; azd stores this in
// .azure/<env>/.env and main.parameters.json passes it back as snoozeKeyProvisioned, so the
// next provision leaves the key alone. `azd env refresh` restores it on a new machine or in CI.
output HUNTWIRE_SNOOZE_KEY_PROVISIONED bool = true
