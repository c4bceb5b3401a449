// The optional Log Analytics copy of acr-scan's sub-assessments (scanning/findings_export.py):
// a custom table, a data collection endpoint and rule whose stream lands in it, and the right
// for the app to send to that rule. Deployed in the workspace's resource group; the rule and
// endpoint take the workspace's region, as a Log Analytics destination requires.

param workspaceName string
param baseName string
param resourceToken string
param tags object

@description('Principal id of the app identity.')
param appPrincipalId string

// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/monitor
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var tableName = 'AcrScanSubAssessments_CL'
// The stream the app uploads to (FINDINGS_DCR_STREAM's default).
var streamName = 'Custom-AcrScanSubAssessments'
// The rows scanning/findings_export.py builds: flat columns to filter on, and the Defender
// sub-assessment's properties as they are.
var columns = [
  { name: 'TimeGenerated', type: 'datetime' }
  { name: 'Id', type: 'string' }
  { name: 'Name', type: 'string' }
  { name: 'Type', type: 'string' }
  { name: 'AssessmentKey', type: 'string' }
  { name: 'Registry', type: 'string' }
  { name: 'Repository', type: 'string' }
  { name: 'Digest', type: 'string' }
  { name: 'StatusCode', type: 'string' }
  { name: 'Severity', type: 'string' }
  { name: 'Properties', type: 'dynamic' }
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: tableName
  properties: {
    schema: {
      name: tableName
      columns: columns
    }
  }
}

resource endpoint 'Microsoft.Insights/dataCollectionEndpoints@2023-03-11' = {
  name: 'dce-${baseName}-findings-${resourceToken}'
  location: workspace.location
  tags: tags
  properties: {
    networkAcls: {
      // The Flex Consumption app sends over the public endpoint (no VNet integration here).
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource rule 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: 'dcr-${baseName}-findings-${resourceToken}'
  location: workspace.location
  tags: tags
  properties: {
    dataCollectionEndpointId: endpoint.id
    streamDeclarations: {
      '${streamName}': {
        columns: columns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          streamName
        ]
        destinations: [
          'workspace'
        ]
        transformKql: 'source'
        outputStream: 'Custom-${tableName}'
      }
    ]
  }
  dependsOn: [
    table
  ]
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rule.id, appPrincipalId, monitoringMetricsPublisher)
  scope: rule
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output ingestionEndpoint string = endpoint.properties.logsIngestion.endpoint
output ruleImmutableId string = rule.properties.immutableId
output streamName string = streamName
