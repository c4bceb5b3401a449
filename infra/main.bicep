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

@description('Client id of an Entra ID app registration for the results API: set, App Service Authentication accepts its access tokens and the Defender-shaped routes require one. Empty: function keys only.')
param apiEntraClientId string = ''

@description('Tenant of that app registration.')
param apiEntraTenantId string = tenant().tenantId

@secure()
@description('Key that signs in to the web dashboard at the site root. Empty: only Entra ID sign-in (apiEntraClientId).')
param dashboardKey string = ''

@secure()
@description('Keys (comma separated) the app accepts on the results API besides an Entra access token while apiEntraClientId is set (the routes are then anonymous to the Functions host, which checks only its own keys, so the app checks these); unused without Entra ID.')
param apiKeys string = ''

@description('Object id of the Entra group whose members may use the dashboard (the app registration must emit group claims); empty: anyone App Service Authentication lets in.')
param dashboardAllowedGroupId string = ''

@description('Also send every assessment\'s sub-assessments to the AcrScanSubAssessments_CL table of the workspace (Logs Ingestion API), for KQL across images.')
param exportFindingsToLogAnalytics bool = false

@description('More registries the Defender-shaped API names by ARM id: login server -> resource id.')
param additionalRegistryResourceIds object = {}

// ---------------------------------------------------------------------------------------------
// The app (modules/app.bicep) and the wiring of the one registry (modules/registry.bicep)
// ---------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(resourceGroup().id, baseName))
var registryResourceGroup = empty(registryResourceGroupName) ? resourceGroup().name : registryResourceGroupName

// The registry may live in another resource group; read it there for its login server.
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
  scope: resourceGroup(registryResourceGroup)
}

module app 'modules/app.bicep' = {
  name: 'acrscan-app'
  params: {
    baseName: baseName
    location: location
    tags: tags
    existingLogAnalyticsWorkspaceId: existingLogAnalyticsWorkspaceId
    storageSku: storageSku
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    advisoryFeedUrl: advisoryFeedUrl
    azureLinuxOvalUrl: azureLinuxOvalUrl
    advisoryEcosystems: advisoryEcosystems
    rescanSchedule: rescanSchedule
    advisoryRefreshSchedule: advisoryRefreshSchedule
    catchupSchedule: catchupSchedule
    pullWindowDays: pullWindowDays
    notifyQueueName: notifyQueueName
    notifyWebhookUrl: notifyWebhookUrl
    billingUnitPrice: billingUnitPrice
    billingCurrency: billingCurrency
    // The catch-up job lists this registry plus any extra ones.
    registries: empty(additionalRegistries) ? registry.properties.loginServer : '${registry.properties.loginServer},${additionalRegistries}'
    // One registry here; subscription.bicep sets the subscriptions to list from ARM.
    subscriptionIds: ''
    apiEntraClientId: apiEntraClientId
    apiEntraTenantId: apiEntraTenantId
    dashboardKey: dashboardKey
    apiKeys: apiKeys
    dashboardAllowedGroupId: dashboardAllowedGroupId
    exportFindingsToLogAnalytics: exportFindingsToLogAnalytics
    // The Defender-shaped API names this registry (and any extra ones) by ARM id.
    registryResourceIds: union(json('{"${registry.properties.loginServer}": "${registry.id}"}'), additionalRegistryResourceIds)
  }
}

module registryWiring 'modules/registry.bicep' = {
  name: 'acrscan-registry-${resourceToken}'
  scope: resourceGroup(registryResourceGroup)
  params: {
    registryName: registryName
    baseName: baseName
    tags: tags
    appPrincipalId: app.outputs.appPrincipalId
    workspaceId: app.outputs.workspaceId
    functionAppId: app.outputs.functionAppId
    subscribeToRegistryEvents: subscribeToRegistryEvents
    eventsIdentityId: app.outputs.eventsIdentityId
    deadLetterStorageAccountId: app.outputs.storageAccountId
    deadLetterContainerName: app.outputs.deadLetterContainerName
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

output functionAppName string = app.outputs.functionAppName
output resultsApiBaseUrl string = 'https://${app.outputs.defaultHostName}/api'
output storageAccountName string = app.outputs.storageAccountName
output registryLoginServer string = registry.properties.loginServer
output eventSubscriptionCreated bool = registryWiring.outputs.eventSubscriptionCreated
