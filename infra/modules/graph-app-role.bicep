// Microsoft Graph application permission ThreatHunting.Read.All for the function's identity
// (POST /security/runHuntingQuery). Uses the Microsoft Graph Bicep extension (GA types
// v1.0:1.0.0, Bicep >= 0.36.1; alias in infra/bicepconfig.json).
//
// Deploying this needs a deployer who may grant Graph app roles: delegated
// AppRoleAssignment.ReadWrite.All + Application.Read.All, i.e. in practice a Privileged Role
// Administrator or Global Administrator. Everyone else: leave grantGraphPermission false and
// have an admin run the one-liner in docs/deploy.md.
//
// This file is deliberately excluded from the offline parse checks (tools/check_bicep.py) and
// from checkov: neither pycep nor tree-sitter-bicep knows the `extension` statement.
extension microsoftGraphV1

@description('Object (principal) id of the user-assigned managed identity.')
param managedIdentityPrincipalId string

@description('Graph application permission to grant.')
param appRoleValue string = 'ThreatHunting.Read.All'

// Microsoft Graph's service principal in this tenant (well-known appId).
resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '00000003-0000-0000-c000-000000000000'
}

resource threatHuntingRead 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  principalId: managedIdentityPrincipalId
  resourceId: microsoftGraph.id
  appRoleId: filter(microsoftGraph.appRoles, role => role.value == appRoleValue && contains(role.allowedMemberTypes, 'Application'))[0].id
}

output appRoleAssignmentId string = threatHuntingRead.id
