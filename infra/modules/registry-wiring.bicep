// What the acr-scan policy deploys to each container registry, in one place for both scopes
// (modules/registry-policy.bicep for a subscription, managementgroup.bicep for a management
// group): the DeployIfNotExists definition's properties and the roles its deployments need. No
// resources: the caller declares the definition, assignment and remediation at its scope.
// For each registry the deployment makes what modules/registry.bicep makes for one: AcrPull and
// Reader for the app, the Event Grid system topic and its subscription to on_registry_event,
// and the diagnostic setting to the workspace (created last, so it marks a complete wiring).
targetScope = 'subscription'

param baseName string

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

@description('''Built-in role definition ids the policy's deployments run with: the caller assigns them to
the assignment's identity at its scope (role assignment names and loops need them before the
deployment starts, so they cannot come from this module's outputs).''')
param deployerRoles array

// The same wiring as modules/registry.bicep (tests/infra/test_policy.py checks they agree).
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
var registryRoles = [
  acrPull
  reader
]
var eventFunctionName = 'on_registry_event'
var eventTypes = [
  'Microsoft.ContainerRegistry.ImagePushed'
  'Microsoft.ContainerRegistry.ImageDeleted'
]
var logCategories = [
  'ContainerRegistryRepositoryEvents'
  'ContainerRegistryLoginEvents'
]

var wiringName = 'acr-scan-${baseName}'

// The deployment template runs in the registry's resource group. Strings that start with '['
// are ARM expressions of that deployment (Bicep escapes them for this one).
var registryId = '[resourceId(\'Microsoft.ContainerRegistry/registries\', parameters(\'registryName\'))]'
var registryScope = '[format(\'Microsoft.ContainerRegistry/registries/{0}\', parameters(\'registryName\'))]'
var topicName = '[format(\'egst-{0}-{1}\', parameters(\'registryName\'), \'${baseName}\')]'

// The app's roles on the registry.
var roleResources = [
  for roleId in registryRoles: {
    type: 'Microsoft.Authorization/roleAssignments'
    apiVersion: '2022-04-01'
    scope: registryScope
    name: '[guid(resourceId(\'Microsoft.ContainerRegistry/registries\', parameters(\'registryName\')), \'${appPrincipalId}\', \'${roleId}\')]'
    properties: {
      roleDefinitionId: '[subscriptionResourceId(\'Microsoft.Authorization/roleDefinitions\', \'${roleId}\')]'
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// The Event Grid topic and subscription, then the diagnostic setting.
var wiringResources = [
  {
    type: 'Microsoft.EventGrid/systemTopics'
    apiVersion: '2022-06-15'
    name: topicName
    location: '[parameters(\'location\')]'
    identity: {
      type: 'UserAssigned'
      userAssignedIdentities: {
        '${eventsIdentityId}': {}
      }
    }
    properties: {
      source: registryId
      topicType: 'Microsoft.ContainerRegistry.Registries'
    }
  }
  {
    type: 'Microsoft.EventGrid/systemTopics/eventSubscriptions'
    apiVersion: '2022-06-15'
    name: '[format(\'egst-{0}-{1}/{2}\', parameters(\'registryName\'), \'${baseName}\', \'${wiringName}\')]'
    dependsOn: [
      '[resourceId(\'Microsoft.EventGrid/systemTopics\', format(\'egst-{0}-{1}\', parameters(\'registryName\'), \'${baseName}\'))]'
    ]
    properties: {
      eventDeliverySchema: 'EventGridSchema'
      destination: {
        endpointType: 'AzureFunction'
        properties: {
          resourceId: '${functionAppId}/functions/${eventFunctionName}'
          maxEventsPerBatch: 1
          preferredBatchSizeInKilobytes: 64
        }
      }
      filter: {
        includedEventTypes: eventTypes
      }
      retryPolicy: {
        maxDeliveryAttempts: 30
        eventTimeToLiveInMinutes: 1440
      }
      deadLetterWithResourceIdentity: {
        identity: {
          type: 'UserAssigned'
          userAssignedIdentity: eventsIdentityId
        }
        deadLetterDestination: {
          endpointType: 'StorageBlob'
          properties: {
            resourceId: deadLetterStorageAccountId
            blobContainerName: deadLetterContainerName
          }
        }
      }
    }
  }
  {
    type: 'Microsoft.Insights/diagnosticSettings'
    apiVersion: '2021-05-01-preview'
    scope: registryScope
    name: wiringName
    dependsOn: [
      '[resourceId(\'Microsoft.EventGrid/systemTopics/eventSubscriptions\', format(\'egst-{0}-{1}\', parameters(\'registryName\'), \'${baseName}\'), \'${wiringName}\')]'
    ]
    properties: {
      workspaceId: workspaceId
      logs: [
        for category in logCategories: {
          category: category
          enabled: true
        }
      ]
    }
  }
]

var wiringTemplate = {
  '$schema': 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#'
  contentVersion: '1.0.0.0'
  parameters: {
    registryName: {
      type: 'string'
    }
    location: {
      type: 'string'
    }
  }
  resources: concat(roleResources, wiringResources)
}

var definitionProperties = {
  displayName: 'acr-scan (${baseName}): scan every container registry'
  description: 'Wires each container registry to the acr-scan function app: push and delete events, resource logs, pull rights.'
  policyType: 'Custom'
  mode: 'Indexed'
  metadata: {
    category: 'Container Registry'
  }
  policyRule: {
    if: {
      field: 'type'
      equals: 'Microsoft.ContainerRegistry/registries'
    }
    then: {
      effect: 'deployIfNotExists'
      details: {
        type: 'Microsoft.Insights/diagnosticSettings'
        name: wiringName
        existenceCondition: {
          field: 'Microsoft.Insights/diagnosticSettings/workspaceId'
          equals: workspaceId
        }
        roleDefinitionIds: [
          for roleId in deployerRoles: '/providers/Microsoft.Authorization/roleDefinitions/${roleId}'
        ]
        deployment: {
          properties: {
            mode: 'incremental'
            template: wiringTemplate
            parameters: {
              registryName: {
                value: '[field(\'name\')]'
              }
              location: {
                value: '[field(\'location\')]'
              }
            }
          }
        }
      }
    }
  }
}

output definitionProperties object = definitionProperties
