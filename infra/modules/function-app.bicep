// The acr-scan function app on the Flex Consumption plan (Linux, Python 3.11). The runtime and
// its version live in functionAppConfig, so FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION must not be app settings on this plan.
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan

param name string
param location string
param tags object

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (identity-based connections and DefaultAzureCredential).')
param identityClientId string

param blobEndpoint string
param queueEndpoint string
param tableEndpoint string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@secure()
param appInsightsConnectionString string

param maximumInstanceCount int
param instanceMemoryMB int

@description('Client id of the Entra app registration API callers get tokens for; empty: no Entra ID authentication (function keys only).')
param entraClientId string

@description('Tenant that issues those tokens.')
param entraTenantId string

@description('The app\'s own settings (scanning/config.py), merged with the platform ones below.')
@secure()
param settings object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // The results API and Event Grid delivery reach the app over its public endpoint; every
    // HTTP function needs a function key (FUNCTION auth level), or with Entra ID on, the
    // Defender-shaped routes an access token (authsettingsV2 below).
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  // Identity-based AzureWebJobsStorage: no account key anywhere. The host, the Durable Functions
  // task hub and the app's own clients all use these.
  // https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
  resource appSettings 'config' = {
    name: 'appsettings'
    properties: union(settings, {
      AzureWebJobsStorage__blobServiceUri: blobEndpoint
      AzureWebJobsStorage__queueServiceUri: queueEndpoint
      AzureWebJobsStorage__tableServiceUri: tableEndpoint
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AZURE_CLIENT_ID: identityClientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
      // Application Insights has local (key) auth disabled: send telemetry as the identity.
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    })
  }

  // App Service Authentication validates Entra ID access tokens (issuer, audience, expiry) in
  // front of the app and passes the caller as X-MS-CLIENT-PRINCIPAL. Requests without a token
  // go through (AllowAnonymous): the key-guarded routes still need their function key, and the
  // Defender-shaped routes refuse a request without a principal (API_ENTRA_AUTH).
  resource authSettings 'config' = {
    name: 'authsettingsV2'
    properties: {
      platform: {
        // Off (the rest then ignored) without an app registration: function keys only.
        enabled: !empty(entraClientId)
      }
      globalValidation: {
        requireAuthentication: false
        unauthenticatedClientAction: 'AllowAnonymous'
      }
      identityProviders: {
        azureActiveDirectory: {
          enabled: !empty(entraClientId)
          registration: {
            clientId: entraClientId
            openIdIssuer: '${environment().authentication.loginEndpoint}${entraTenantId}/v2.0'
          }
          validation: {
            allowedAudiences: [
              entraClientId
              'api://${entraClientId}'
            ]
          }
        }
      }
      login: {
        tokenStore: {
          enabled: false
        }
      }
    }
  }

  // Deployments authenticate with Entra ID; no basic-auth publishing credentials.
  resource scmBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }

  resource ftpBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
