// Storage for the Functions host (identity-based AzureWebJobsStorage), the Flex Consumption
// deployment package, and huntwire's findings tables. Shared keys are disabled: every client
// authenticates with Entra ID.
param name string
param location string = resourceGroup().location
param tags object = {}
param deploymentContainerName string
param tableNames array

// LRS by default: everything huntwire keeps here can be lost without losing detections. The
// dedup ledger only stops repeats (losing it re-posts findings still inside a hunt's lookback
// once), checkpoints fall back to the hunt's lookback, health and incidents rebuild from the
// next runs, and the deployment package is re-uploaded by `azd deploy`. Snoozes are the one
// thing people wrote: losing them means snoozing again. GRS would double the storage bill for
// a copy that is only readable after a customer-initiated failover of a single-region app.
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Replication of the storage account (docs/deploy.md: why LRS is the default).')
param skuName string = 'Standard_LRS'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Default-deny needs VNet integration and private endpoints (the template's vnetEnabled path, not taken here); the host and the Flex deployment reach this account over its public endpoint. Shared keys are off: Entra ID only.
  // checkov:skip=CKV_AZURE_206: Replication is the skuName parameter, LRS by default on purpose: the account holds a rebuildable dedup ledger, checkpoints, health and incident state and the deployment package, none of which a geo copy would save a detection for; pass Standard_ZRS or Standard_GRS to replicate.
  // checkov:skip=CKV_AZURE_59: Same reason: publicNetworkAccess must stay Enabled without VNet integration; anonymous blob access and shared keys are disabled.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableServices 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableServices
  name: tableName
}]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
