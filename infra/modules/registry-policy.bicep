// Every container registry of the subscription wired to the app by Azure Policy: the
// DeployIfNotExists definition of modules/registry-wiring.bicep, its assignment (with the
// identity that deploys) and the roles that identity needs, and a remediation task for the
// registries that exist already. managementgroup.bicep declares the same at a management group.
targetScope = 'subscription'

param baseName string
param location string

@description('Principal id of the app identity.')
param appPrincipalId string

@description('Resource id of the Log Analytics workspace that receives the registry logs.')
param workspaceId string

@description('Resource id of the function app (Microsoft.Web/sites).')
param functionAppId string

@description('Resource id of the user-assigned identity Event Grid writes dead letters with.')
param eventsIdentityId string

param deadLetterStorageAccountId string
param deadLetterContainerName string

// What the policy's deployments need: Contributor for the Event Grid topic, its subscription
// (with the events identity) and the diagnostic setting; User Access Administrator for the
// app's role assignments on the registry.
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd7c4'
var userAccessAdministrator = '18d7d88d-d35e-4fb5-a5c3-7773c20a72d9'
var deployerRoles = [
  contributor
  userAccessAdministrator
]

module wiring 'registry-wiring.bicep' = {
  name: 'acrscan-wiring-${baseName}'
  params: {
    baseName: baseName
    appPrincipalId: appPrincipalId
    workspaceId: workspaceId
    functionAppId: functionAppId
    eventsIdentityId: eventsIdentityId
    deadLetterStorageAccountId: deadLetterStorageAccountId
    deadLetterContainerName: deadLetterContainerName
    deployerRoles: deployerRoles
  }
}

resource definition 'Microsoft.Authorization/policyDefinitions@2023-04-01' = {
  name: 'acr-scan-${baseName}-registries'
  properties: wiring.outputs.definitionProperties
}

resource assignment 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: 'acr-scan-${baseName}'
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    displayName: 'acr-scan (${baseName}): scan every container registry'
    policyDefinitionId: definition.id
    enforcementMode: 'Default'
  }
}

resource deployerRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in deployerRoles: {
    name: guid(subscription().id, assignment.id, roleId)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: assignment.identity.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Registries that existed before the assignment are only wired by a remediation task.
resource remediation 'Microsoft.PolicyInsights/remediations@2021-10-01' = {
  name: 'acr-scan-${baseName}-existing'
  properties: {
    policyAssignmentId: assignment.id
    resourceDiscoveryMode: 'ReEvaluateCompliance'
  }
  dependsOn: [
    deployerRoleAssignments
  ]
}

output policyAssignmentId string = assignment.id
