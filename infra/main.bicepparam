// Parameters for infra/main.bicep, read from the environment so the deploy command stays one line
// (README.md, "Deploy to Azure"):
//   ACR_SCAN_REGISTRY      name of the existing registry (required)
//   ACR_SCAN_REGISTRY_RG   its resource group, when it is not the deployment resource group
//   ACR_SCAN_SUBSCRIBE     false on the first run, before the function code is published
//   ACR_SCAN_WORKSPACE_ID  resource id of an existing Log Analytics workspace (optional)
//   ACR_SCAN_API_CLIENT_ID client id of an Entra app registration for the API (optional)
using './main.bicep'

param baseName = 'acrscan'
param registryName = readEnvironmentVariable('ACR_SCAN_REGISTRY')
param registryResourceGroupName = readEnvironmentVariable('ACR_SCAN_REGISTRY_RG', '')
param subscribeToRegistryEvents = bool(readEnvironmentVariable('ACR_SCAN_SUBSCRIBE', 'true'))
param existingLogAnalyticsWorkspaceId = readEnvironmentVariable('ACR_SCAN_WORKSPACE_ID', '')
param apiEntraClientId = readEnvironmentVariable('ACR_SCAN_API_CLIENT_ID', '')
param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param pullWindowDays = 30
param billingUnitPrice = '0.29'
param billingCurrency = 'USD'
