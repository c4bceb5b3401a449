// Log Analytics (new, or an existing workspace given by resource id) and workspace-based
// Application Insights that accepts telemetry only from Entra identities (no instrumentation key
// ingestion), so the app identity gets Monitoring Metrics Publisher on it.

param baseName string
param resourceToken string
param location string
param tags object

@description('Create the workspace here (true) or use an existing one (false).')
param createWorkspace bool

@description('Workspace name, subscription and resource group (of the new or the existing one).')
param workspaceName string
param workspaceSubscriptionId string
param workspaceResourceGroupName string

@description('Principal id of the app identity.')
param appPrincipalId string

// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/monitor
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource newWorkspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = if (createWorkspace) {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource existingWorkspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = if (!createWorkspace) {
  name: workspaceName
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroupName)
}

// ARM evaluates only the taken branch of a condition, so the absent resource is never read.
var workspaceId = createWorkspace ? newWorkspace.id : existingWorkspace.id

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${baseName}-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspaceId
    DisableLocalAuth: true
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspaceId
output workspaceCustomerId string = createWorkspace ? newWorkspace.properties.customerId : existingWorkspace.properties.customerId
output appInsightsConnectionString string = appInsights.properties.ConnectionString
