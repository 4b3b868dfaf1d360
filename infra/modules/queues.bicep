// Storage queues of the fan-out (HUNTWIRE_FANOUT=queue, docs/fanout.md) on the app's storage
// account: one message per (tenant, due hunt) in huntwire-hunts, delivery triggers in
// huntwire-delivery, and the two poison queues the Functions host moves a message to after
// host.json's maxDequeueCount (5) failed attempts. Created here so they exist (and are watched
// by their poison functions) before the first message; the host and the code create them on
// first use otherwise.
//
// Access: the identity's Storage Queue Data Contributor on this account is rbac.bicep's
// (enableQueue, granted for the host's identity-based AzureWebJobsStorage); it covers sending,
// receiving, deleting and creating these queues. One assignment per role keeps
// tests/test_infra.py's least-privilege inventory exact.
param storageAccountName string
param queueNames array = [
  'huntwire-hunts'
  'huntwire-delivery'
  'huntwire-hunts-poison'
  'huntwire-delivery-poison'
]

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

output queueServiceUri string = storageAccount.properties.primaryEndpoints.queue
output queueNames array = [for (queueName, i) in queueNames: queues[i].name]
