// acr-scan: the function app, its storage, monitoring and the Event Grid wiring to an existing
// Azure Container Registry. Deploy into a resource group you own:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
// See README.md (section "Deploy to Azure") for the whole procedure.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Where and what
// ---------------------------------------------------------------------------------------------

@description('Short name used to derive every resource name (letters and digits, 3-12 chars).')
@minLength(3)
@maxLength(12)
param baseName string = 'acrscan'

@description('Region for the new resources. Flex Consumption is not offered in every region.')
param location string = resourceGroup().location

@description('Tags applied to every new resource.')
param tags object = {}

@description('Name of the EXISTING container registry to scan (not its login server).')
param registryName string

@description('Resource group of the existing registry; empty means the deployment resource group.')
param registryResourceGroupName string = ''

@description('Resource id of an existing Log Analytics workspace; empty creates a new one.')
param existingLogAnalyticsWorkspaceId string = ''

@description('''Create the Event Grid subscription to the on_registry_event function. Azure checks
that the function exists when the subscription is created, so the first deployment (before the
code is published) runs with false and the second with true; see README.md.''')
param subscribeToRegistryEvents bool = true

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

@description('Extra registries (login servers, comma separated) the catch-up job lists besides this one.')
param additionalRegistries string = ''

@description('Queue that receives a message for each image that needs attention.')
param notifyQueueName string = 'scan-notifications'

@description('Webhook called for each image that needs attention; empty disables it. May carry a token.')
@secure()
param notifyWebhookUrl string = ''

@description('Price charged per image digest scanned for the first time.')
param billingUnitPrice string = '0.29'

@description('Currency of billingUnitPrice.')
param billingCurrency string = 'USD'

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
var registryResourceGroup = empty(registryResourceGroupName) ? resourceGroup().name : registryResourceGroupName
var createWorkspace = empty(existingLogAnalyticsWorkspaceId)
// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{name}
var workspaceIdParts = split(createWorkspace ? resourceId('Microsoft.OperationalInsights/workspaces', 'log-${baseName}-${resourceToken}') : existingLogAnalyticsWorkspaceId, '/')
// The catch-up job lists this registry plus any extra ones.
var registries = empty(additionalRegistries) ? registry.properties.loginServer : '${registry.properties.loginServer},${additionalRegistries}'

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

// The registry may live in another resource group; read it there for its login server.
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
  scope: resourceGroup(registryResourceGroup)
}

// ---------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------

module storage 'modules/storage.bicep' = {
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

module monitoring 'modules/monitoring.bicep' = {
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
module workspaceReader 'modules/workspace-reader.bicep' = {
  name: 'acrscan-workspace-reader-${resourceToken}'
  scope: resourceGroup(workspaceIdParts[2], workspaceIdParts[4])
  params: {
    // The output (not the bare name) orders this after the workspace exists.
    workspaceName: last(split(monitoring.outputs.workspaceId, '/'))
    principalId: appIdentity.properties.principalId
  }
}

module functionApp 'modules/function-app.bicep' = {
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
      // How long an untagged manifest push waits for the index that lists it (one scan per index).
      INDEX_CHILD_GRACE_SECONDS: '20'
      REGISTRIES: registries
      // One registry here; subscription.bicep sets the subscriptions to list from ARM.
      SUBSCRIPTION_IDS: ''
      // Azure registries are always https; plain http is only for the local stack.
      REGISTRY_INSECURE_HOSTS: ''
      NOTIFY_QUEUE_NAME: notifyQueueName
      NOTIFY_WEBHOOK_URL: notifyWebhookUrl
      BILLING_UNIT_PRICE: billingUnitPrice
      BILLING_CURRENCY: billingCurrency
      // The workspace (customer) id, which the Logs query API takes, not the resource id.
      LOG_ANALYTICS_WORKSPACE_ID: monitoring.outputs.workspaceCustomerId
    }
  }
}

module registryWiring 'modules/registry.bicep' = {
  name: 'acrscan-registry-${resourceToken}'
  scope: resourceGroup(registryResourceGroup)
  params: {
    registryName: registryName
    baseName: baseName
    tags: tags
    appPrincipalId: appIdentity.properties.principalId
    workspaceId: monitoring.outputs.workspaceId
    functionAppId: functionApp.outputs.id
    subscribeToRegistryEvents: subscribeToRegistryEvents
    eventsIdentityId: eventsIdentity.id
    deadLetterStorageAccountId: storage.outputs.id
    deadLetterContainerName: deadLetterContainerName
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output resultsApiBaseUrl string = 'https://${functionApp.outputs.defaultHostName}/api'
output storageAccountName string = storage.outputs.name
output registryLoginServer string = registry.properties.loginServer
output eventSubscriptionCreated bool = registryWiring.outputs.eventSubscriptionCreated
