// Storage queues of the fan-out (HUNTWIRE_FANOUT=queue, docs/fanout.md) on the app's storage
// account: one message per (tenant, due hunt) in huntwire-hunts, delivery triggers in
// huntwire-delivery, and the two poison queues the Functions host moves a message to after
// host.json's maxDequeueCount (5) failed attempts. Created here so they exist (and are watched
// by their poison functions) before the first message; the host and the code create them on
// first use otherwise.
param storageAccountName string
param managedIdentityPrincipalId string
param queueNames array = [
  'huntwire-hunts'
  'huntwire-delivery'
  'huntwire-hunts-poison'
  'huntwire-delivery-poison'
]

// Built-in role: read, add, update, delete queue messages and create queues.
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storageAccount
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

// The fan-out's own grant on the queue service (the timer sends, the workers send the delivery
// trigger, the host's queue triggers receive and delete): narrower than the account-wide grant
// rbac.bicep gives the host for AzureWebJobsStorage, and kept if that one goes.
resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queueService.id, managedIdentityPrincipalId, storageQueueDataContributorRoleId)
  scope: queueService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output queueServiceUri string = storageAccount.properties.primaryEndpoints.queue
output queueNames array = [for (queueName, i) in queueNames: queues[i].name]
