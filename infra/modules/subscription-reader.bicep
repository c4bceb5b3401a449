// Reader on the subscription for the app: the catch-up job lists its registries from ARM.
targetScope = 'subscription'

@description('Principal id of the app identity.')
param principalId string

// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource readerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, reader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
