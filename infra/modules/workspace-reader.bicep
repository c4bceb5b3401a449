// Log Analytics Reader on the workspace, deployed in the workspace's resource group (which is not
// necessarily the app's when an existing workspace is used). The app queries
// ContainerRegistryRepositoryEvents there for last pull times.

param workspaceName string

@description('Principal id of the app identity.')
param principalId string

// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/monitor
var logAnalyticsReader = '73c42c96-874c-492b-b04d-ab87d138a893'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
