// acr-scan for a whole subscription: the function app once, in a resource group of its own, and
// an Azure Policy that wires every container registry of the subscription to it, present ones
// (remediation task) and future ones. Deploy at subscription scope:
//   az deployment sub create -l <region> -f infra/subscription.bicep -p onboardRegistries=false
//   (publish the function code), then the same command with onboardRegistries=true.
// See README.md (section "Deploy for a whole subscription"). infra/main.bicep is the same app
// for one registry; infra/managementgroup.bicep deploys this template (without its policy) for a
// management group.
targetScope = 'subscription'

@description('Short name used to derive every resource name (letters and digits, 3-12 chars).')
@minLength(3)
@maxLength(12)
param baseName string = 'acrscan'

@description('Region of the app\'s resource group and of the policy assignment\'s identity.')
param location string

@description('Resource group created for the app.')
param resourceGroupName string = 'rg-${baseName}'

@description('Tags applied to every new resource.')
param tags object = {}

@description('Resource id of an existing Log Analytics workspace; empty creates a new one.')
param existingLogAnalyticsWorkspaceId string = ''

@description('''Assign the policy that wires every registry to on_registry_event. Azure checks that
the function exists when an event subscription is created, so the first deployment (before the
code is published) runs with false and the second with true.''')
param onboardRegistries bool = true

@description('Flex Consumption: most instances the app scales out to (rescan chunks run in parallel).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('''Subscriptions whose registries the catch-up job lists from ARM, comma separated;
empty: this subscription. managementgroup.bicep passes the management group's.''')
param catchupSubscriptionIds string = ''

@description('Client id of an Entra ID app registration for the results API and the dashboard: set, App Service Authentication signs users in with it and accepts its access tokens. Empty: function keys only.')
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

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module app 'modules/app.bicep' = {
  name: 'acrscan-app'
  scope: group
  params: {
    baseName: baseName
    location: location
    tags: tags
    existingLogAnalyticsWorkspaceId: existingLogAnalyticsWorkspaceId
    maximumInstanceCount: maximumInstanceCount
    // The catch-up job lists every registry of this subscription (or those given) from ARM.
    registries: ''
    subscriptionIds: empty(catchupSubscriptionIds) ? subscription().subscriptionId : catchupSubscriptionIds
    apiEntraClientId: apiEntraClientId
    apiEntraTenantId: apiEntraTenantId
    dashboardKey: dashboardKey
    apiKeys: apiKeys
    dashboardAllowedGroupId: dashboardAllowedGroupId
  }
}

// The app lists the subscription's registries (catch-up) and reads each one's properties.
module subscriptionReader 'modules/subscription-reader.bicep' = {
  name: 'acrscan-reader-${baseName}'
  params: {
    principalId: app.outputs.appPrincipalId
  }
}

module registryPolicy 'modules/registry-policy.bicep' = if (onboardRegistries) {
  name: 'acrscan-policy-${baseName}'
  params: {
    baseName: baseName
    location: location
    appPrincipalId: app.outputs.appPrincipalId
    workspaceId: app.outputs.workspaceId
    functionAppId: app.outputs.functionAppId
    eventsIdentityId: app.outputs.eventsIdentityId
    deadLetterStorageAccountId: app.outputs.storageAccountId
    deadLetterContainerName: app.outputs.deadLetterContainerName
  }
}

output functionAppName string = app.outputs.functionAppName
output resultsApiBaseUrl string = 'https://${app.outputs.defaultHostName}/api'
output storageAccountName string = app.outputs.storageAccountName
output resourceGroupName string = group.name
// What managementgroup.bicep wires the registries to.
output appPrincipalId string = app.outputs.appPrincipalId
output workspaceId string = app.outputs.workspaceId
output functionAppId string = app.outputs.functionAppId
output eventsIdentityId string = app.outputs.eventsIdentityId
output storageAccountId string = app.outputs.storageAccountId
output deadLetterContainerName string = app.outputs.deadLetterContainerName
