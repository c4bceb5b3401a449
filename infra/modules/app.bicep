// The acr-scan app without any registry: its identities, storage, monitoring and the function
// app. main.bicep (one registry) and subscription.bicep (every registry, by policy) deploy it.

@description('Short name used to derive every resource name (letters and digits, 3-12 chars).')
@minLength(3)
@maxLength(12)
param baseName string

@description('Region for the new resources. Flex Consumption is not offered in every region.')
param location string

@description('Tags applied to every new resource.')
param tags object = {}

@description('Resource id of an existing Log Analytics workspace; empty creates a new one.')
param existingLogAnalyticsWorkspaceId string = ''

@description('Storage replication. ZRS keeps the billing ledger through a zone outage; LRS is cheaper.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_ZRS'

@description('Flex Consumption: most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: memory per instance in MB (layer streaming is memory bound).')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------------------------------------
// Application settings (defaults mirror scanning/config.py SETTINGS)
// ---------------------------------------------------------------------------------------------

@description('OSV bulk feed base URL, or a mirror of it.')
param advisoryFeedUrl string = 'https://osv-vulnerabilities.storage.googleapis.com'

@description('Base URL of the Azure Linux / CBL-Mariner OVAL files, or a mirror of it.')
param azureLinuxOvalUrl string = 'https://raw.githubusercontent.com/microsoft/AzureLinuxVulnerabilityData/main'

@description('Comma separated OSV ecosystems to download; empty means the built-in list.')
param advisoryEcosystems string = ''

@description('Six-field NCRONTAB schedule of the weekly re-assessment.')
param rescanSchedule string = '0 0 3 * * 0'

@description('Six-field NCRONTAB schedule of the advisory refresh.')
param advisoryRefreshSchedule string = '0 0 2 * * *'

@description('Six-field NCRONTAB schedule of the registry catch-up listing.')
param catchupSchedule string = '0 30 */6 * * *'

@description('Images pulled within this many days are re-assessed.')
param pullWindowDays int = 30

@description('Queue that receives a message for each image that needs attention.')
param notifyQueueName string = 'scan-notifications'

@description('Webhook called for each image that needs attention; empty disables it. May carry a token.')
@secure()
param notifyWebhookUrl string = ''

@description('Price charged per image digest scanned for the first time.')
param billingUnitPrice string = '0.29'

@description('Currency of billingUnitPrice.')
param billingCurrency string = 'USD'

@description('Login servers the catch-up job lists, comma separated.')
param registries string

@description('Subscriptions whose registries the catch-up job lists from ARM, comma separated.')
param subscriptionIds string

@description('Client id of an Entra ID app registration for the results API; empty: function keys only.')
param apiEntraClientId string = ''

@secure()
@description('Key that signs in to the web dashboard (scanning/dashboard/auth.py); empty: Entra ID sign-in only.')
param dashboardKey string = ''

@secure()
@description('Keys (comma separated) the app accepts on the results API besides an Entra access token while apiEntraClientId is set (the routes are then anonymous to the Functions host, which checks only its own keys, so the app checks these); unused without Entra ID.')
param apiKeys string = ''

@description('Object id of the Entra group whose members may use the dashboard (its app registration must emit group claims); empty: anyone App Service Authentication lets in.')
param dashboardAllowedGroupId string = ''

@description('Tenant of that app registration.')
param apiEntraTenantId string = tenant().tenantId

@description('Send every assessment\'s sub-assessments to a Log Analytics custom table.')
param exportFindingsToLogAnalytics bool = false

@description('Login server -> registry resource id, for the Defender-shaped API.')
param registryResourceIds object = {}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(resourceGroup().id, baseName))
var functionAppName = 'func-${baseName}-${resourceToken}'
// Storage account names: 3-24 lower-case letters and digits, globally unique.
var storageAccountName = take('st${replace(toLower(baseName), '-', '')}${resourceToken}', 24)
// The Flex Consumption deployment package gets a container of its own, apart from app data.
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'
var advisoryContainerName = 'advisories'
var createWorkspace = empty(existingLogAnalyticsWorkspaceId)
// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{name}
var workspaceIdParts = split(createWorkspace ? resourceId('Microsoft.OperationalInsights/workspaces', 'log-${baseName}-${resourceToken}') : existingLogAnalyticsWorkspaceId, '/')

// ---------------------------------------------------------------------------------------------
// Identities: one for the app, one that Event Grid uses to write dead letters
// ---------------------------------------------------------------------------------------------

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${baseName}-app-${resourceToken}'
  location: location
  tags: tags
}

resource eventsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${baseName}-events-${resourceToken}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------

module storage 'storage.bicep' = {
  name: 'acrscan-storage'
  params: {
    name: storageAccountName
    location: location
    tags: tags
    skuName: storageSku
    containerNames: [
      deploymentContainerName
      advisoryContainerName
    ]
    deadLetterContainerName: deadLetterContainerName
    queueNames: [
      notifyQueueName
    ]
    appPrincipalId: appIdentity.properties.principalId
    eventsPrincipalId: eventsIdentity.properties.principalId
  }
}

module monitoring 'monitoring.bicep' = {
  name: 'acrscan-monitoring'
  params: {
    baseName: baseName
    resourceToken: resourceToken
    location: location
    tags: tags
    createWorkspace: createWorkspace
    workspaceName: workspaceIdParts[8]
    workspaceSubscriptionId: workspaceIdParts[2]
    workspaceResourceGroupName: workspaceIdParts[4]
    appPrincipalId: appIdentity.properties.principalId
  }
}

// Log Analytics Reader where the workspace is, which may be another resource group.
module workspaceReader 'workspace-reader.bicep' = {
  name: 'acrscan-workspace-reader-${resourceToken}'
  scope: resourceGroup(workspaceIdParts[2], workspaceIdParts[4])
  params: {
    // The output (not the bare name) orders this after the workspace exists.
    workspaceName: last(split(monitoring.outputs.workspaceId, '/'))
    principalId: appIdentity.properties.principalId
  }
}

// The optional findings table, endpoint and rule, next to the workspace.
module findingsTable 'findings-table.bicep' = if (exportFindingsToLogAnalytics) {
  name: 'acrscan-findings-table-${resourceToken}'
  scope: resourceGroup(workspaceIdParts[2], workspaceIdParts[4])
  params: {
    workspaceName: last(split(monitoring.outputs.workspaceId, '/'))
    baseName: baseName
    resourceToken: resourceToken
    tags: tags
    appPrincipalId: appIdentity.properties.principalId
  }
}

module functionApp 'function-app.bicep' = {
  name: 'acrscan-function-app'
  params: {
    name: functionAppName
    location: location
    tags: tags
    identityId: appIdentity.id
    identityClientId: appIdentity.properties.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    entraClientId: apiEntraClientId
    entraTenantId: apiEntraTenantId
    settings: {
      STORE_PREFIX: 'acrscan'
      ADVISORY_FEED_URL: advisoryFeedUrl
      ADVISORY_ECOSYSTEMS: advisoryEcosystems
      ADVISORY_CONTAINER: advisoryContainerName
      AZURE_LINUX_OVAL_URL: azureLinuxOvalUrl
      RESCAN_SCHEDULE: rescanSchedule
      ADVISORY_REFRESH_SCHEDULE: advisoryRefreshSchedule
      CATCHUP_SCHEDULE: catchupSchedule
      PULL_WINDOW_DAYS: string(pullWindowDays)
      // Worker processes of a large weekly rescan: 0 = one per core of the instance.
      RESCAN_PROCESSES: '0'
      // Images per chunk activity of the rescan orchestration.
      RESCAN_CHUNK_IMAGES: '500'
      // Entries read from one layer tar; past it the platform is partial.
      MAX_LAYER_ENTRIES: '500000'
      // How long an untagged manifest push waits for the index that lists it (one scan per index).
      INDEX_CHILD_GRACE_SECONDS: '20'
      REGISTRIES: registries
      SUBSCRIPTION_IDS: subscriptionIds
      // Azure registries are always https; plain http is only for the local stack.
      REGISTRY_INSECURE_HOSTS: ''
      // Records read from one package database before the rest is skipped (platform partial).
      MAX_DB_RECORDS: '200000'
      // Registry deadlines (a blob: the floor plus its size at the minimum rate) and attempts.
      REGISTRY_MANIFEST_DEADLINE_SECONDS: '60'
      REGISTRY_BLOB_DEADLINE_SECONDS: '60'
      REGISTRY_BLOB_MIN_BYTES_PER_SECOND: '1048576'
      REGISTRY_ATTEMPTS: '4'
      NOTIFY_QUEUE_NAME: notifyQueueName
      NOTIFY_WEBHOOK_URL: notifyWebhookUrl
      BILLING_UNIT_PRICE: billingUnitPrice
      BILLING_CURRENCY: billingCurrency
      // The workspace (customer) id, which the Logs query API takes, not the resource id.
      LOG_ANALYTICS_WORKSPACE_ID: monitoring.outputs.workspaceCustomerId
      // The Defender-shaped API's ARM ids (scanning/defender.py) and its Entra ID check.
      REGISTRY_RESOURCE_IDS: string(registryResourceIds)
      API_ENTRA_AUTH: empty(apiEntraClientId) ? 'false' : 'true'
      API_KEYS: apiKeys
      DASHBOARD_KEY: dashboardKey
      // Empty: the dashboard signs its CSRF tokens with the key, else with a random secret
      // the app keeps in its private meta table (no secure parameter with a default).
      DASHBOARD_SECRET: ''
      DASHBOARD_ALLOWED_GROUP: dashboardAllowedGroupId
      // The dashboard takes the site root (host.json routePrefix ""): no Functions home page.
      AzureWebJobsDisableHomepage: 'true'
      // The optional Log Analytics export (scanning/findings_export.py); empty: off.
      FINDINGS_DCR_ENDPOINT: exportFindingsToLogAnalytics ? findingsTable.outputs.ingestionEndpoint : ''
      FINDINGS_DCR_RULE_ID: exportFindingsToLogAnalytics ? findingsTable.outputs.ruleImmutableId : ''
      FINDINGS_DCR_STREAM: exportFindingsToLogAnalytics ? findingsTable.outputs.streamName : 'Custom-AcrScanSubAssessments'
    }
  }
}

output functionAppId string = functionApp.outputs.id
output functionAppName string = functionApp.outputs.name
output defaultHostName string = functionApp.outputs.defaultHostName
output storageAccountId string = storage.outputs.id
output storageAccountName string = storage.outputs.name
output deadLetterContainerName string = deadLetterContainerName
output appPrincipalId string = appIdentity.properties.principalId
output eventsIdentityId string = eventsIdentity.id
output workspaceId string = monitoring.outputs.workspaceId
