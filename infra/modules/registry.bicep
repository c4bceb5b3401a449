// Everything that attaches to the EXISTING registry, deployed in the registry's resource group:
// pull rights for the app, resource logs to Log Analytics (pull times come from there), and the
// Event Grid system topic whose subscription delivers pushes and deletes to on_registry_event.

param registryName string
param baseName string
param tags object

@description('Principal id of the app identity.')
param appPrincipalId string

@description('Resource id of the Log Analytics workspace that receives the registry logs.')
param workspaceId string

@description('Resource id of the function app (Microsoft.Web/sites).')
param functionAppId string

@description('Create the event subscription (the function must already be published).')
param subscribeToRegistryEvents bool

@description('Resource id of the user-assigned identity Event Grid writes dead letters with.')
param eventsIdentityId string

param deadLetterStorageAccountId string
param deadLetterContainerName string

// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
// AcrPull reads manifests and layers; Reader lets the catch-up job read the registry resource
// (login server, properties) and list the catalog.
var registryRoles = [
  acrPull
  reader
]

// The function the subscription delivers to: its name is fixed in function_app.py.
var eventFunctionName = 'on_registry_event'

// Event types the app handles (scanning/events.py EVENT_TYPES).
var eventTypes = [
  'Microsoft.ContainerRegistry.ImagePushed'
  'Microsoft.ContainerRegistry.ImageDeleted'
]

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource registryRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in registryRoles: {
    name: guid(registry.id, appPrincipalId, roleId)
    scope: registry
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// ContainerRegistryRepositoryEvents carries pushes, pulls and deletes (OperationName == "Pull"
// gives last pull times); ContainerRegistryLoginEvents records who authenticated.
// https://learn.microsoft.com/azure/container-registry/monitor-container-registry-reference
resource registryDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'acr-scan-${baseName}'
  scope: registry
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'ContainerRegistryRepositoryEvents'
        enabled: true
      }
      {
        category: 'ContainerRegistryLoginEvents'
        enabled: true
      }
    ]
  }
}

// A registry has at most one system topic; it lives with the registry, in its region.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'egst-${registryName}-${baseName}'
  location: registry.location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${eventsIdentityId}': {}
    }
  }
  properties: {
    source: registry.id
    topicType: 'Microsoft.ContainerRegistry.Registries'
  }
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscribeToRegistryEvents) {
  parent: systemTopic
  name: 'acr-scan-${baseName}'
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
    // Event Grid retries with exponential backoff; a scan request older than a day is stale
    // (the catch-up job lists the registry anyway), so it goes to the dead-letter container.
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

output eventSubscriptionCreated bool = subscribeToRegistryEvents
output systemTopicName string = systemTopic.name
