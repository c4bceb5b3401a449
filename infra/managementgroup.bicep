// acr-scan for a whole management group: the function app once, in a resource group of a
// subscription you choose (subscription.bicep, without its subscription policy), and an Azure
// Policy assigned at the management group that wires every container registry of every
// subscription under it, present ones (remediation task) and future ones. Deploy at management
// group scope:
//   az deployment mg create -m <group> -l <region> -f infra/managementgroup.bicep \
//     -p appSubscriptionId=<id> catchupSubscriptionIds=<id,id,...> onboardRegistries=false
//   (publish the function code), then the same command with onboardRegistries=true.
// See README.md (section "Deploy for a management group").
targetScope = 'managementGroup'

@description('Short name used to derive every resource name (letters and digits, 3-12 chars).')
@minLength(3)
@maxLength(12)
param baseName string = 'acrscan'

@description('Region of the app\'s resource group and of the policy assignment\'s identity.')
param location string

@description('Subscription (under this management group) that receives the app\'s resource group.')
param appSubscriptionId string

@description('''Subscriptions whose registries the catch-up job lists from ARM, comma separated:
the management group's (az account management-group subscription show-sub-under-mg). The
policy covers subscriptions added later; the catch-up job lists them once they are added here.''')
param catchupSubscriptionIds string

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

// The app, as for one subscription; the policy is assigned here instead.
module app 'subscription.bicep' = {
  name: 'acrscan-app-${baseName}'
  scope: subscription(appSubscriptionId)
  params: {
    baseName: baseName
    location: location
    resourceGroupName: resourceGroupName
    tags: tags
    existingLogAnalyticsWorkspaceId: existingLogAnalyticsWorkspaceId
    onboardRegistries: false
    maximumInstanceCount: maximumInstanceCount
    catchupSubscriptionIds: catchupSubscriptionIds
    apiEntraClientId: apiEntraClientId
    apiEntraTenantId: apiEntraTenantId
    dashboardKey: dashboardKey
    apiKeys: apiKeys
    dashboardAllowedGroupId: dashboardAllowedGroupId
  }
}

// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

// The app lists the registries of every subscription under the group and reads their properties.
resource appReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(managementGroup().id, baseName, reader)
  properties: {
    roleDefinitionId: tenantResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: app.outputs.appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

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

// No resources (the definition's properties): deployed on every run, read only when onboarding.
module wiring 'modules/registry-wiring.bicep' = {
  name: 'acrscan-wiring-${baseName}'
  scope: subscription(appSubscriptionId)
  params: {
    baseName: baseName
    appPrincipalId: app.outputs.appPrincipalId
    workspaceId: app.outputs.workspaceId
    functionAppId: app.outputs.functionAppId
    eventsIdentityId: app.outputs.eventsIdentityId
    deadLetterStorageAccountId: app.outputs.storageAccountId
    deadLetterContainerName: app.outputs.deadLetterContainerName
    deployerRoles: deployerRoles
  }
}

resource definition 'Microsoft.Authorization/policyDefinitions@2023-04-01' = if (onboardRegistries) {
  name: 'acr-scan-${baseName}-registries'
  properties: wiring.outputs.definitionProperties
}

resource assignment 'Microsoft.Authorization/policyAssignments@2024-04-01' = if (onboardRegistries) {
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

// The deployments run in each registry's subscription: the roles are granted at the group, so
// they hold in every subscription under it (the app's included: the event subscriptions target
// its function and its events identity, and the diagnostic settings its workspace).
resource deployerRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in deployerRoles: if (onboardRegistries) {
    name: guid(managementGroup().id, assignment.id, roleId)
    properties: {
      roleDefinitionId: tenantResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: assignment.identity.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// A remediation at a management group can only take the registries already evaluated as
// non-compliant (ReEvaluateCompliance is for subscriptions and resource groups); a new
// assignment's first evaluation takes up to about 30 minutes, so run one more remediation after
// it (README.md).
resource remediation 'Microsoft.PolicyInsights/remediations@2021-10-01' = if (onboardRegistries) {
  name: 'acr-scan-${baseName}-existing'
  properties: {
    policyAssignmentId: assignment.id
    resourceDiscoveryMode: 'ExistingNonCompliant'
  }
  dependsOn: [
    deployerRoleAssignments
  ]
}

output functionAppName string = app.outputs.functionAppName
output resultsApiBaseUrl string = app.outputs.resultsApiBaseUrl
output resourceGroupName string = app.outputs.resourceGroupName
output policyAssignmentId string = onboardRegistries ? assignment.id : ''
