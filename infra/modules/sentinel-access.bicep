// Log Analytics Reader for the function's identity on the Sentinel workspace, which may sit in
// another resource group or subscription (main.bicep scopes this module there). Also returns
// the workspace's customer id, the value HUNTWIRE_SENTINEL_WORKSPACE_ID needs.
param workspaceName string
param managedIdentityPrincipalId string

var logAnalyticsReaderRoleId = '73c42c96-874c-492b-b04d-ab87d138a893'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource logAnalyticsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, managedIdentityPrincipalId, logAnalyticsReaderRoleId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReaderRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output customerId string = workspace.properties.customerId
