// Azure Monitor alerts on the hunt function, from its Application Insights requests (each timer
// invocation is one request row named after the function):
// - failed invocations: any failed run in the last hour (a hunt failed, or findings could not
//   be delivered to Teams: the run raises, so the invocation fails);
// - silence: no invocation at all for 2 hours (the timer stopped, the app is down or stuck).
// An e-mail action group is created and attached only when alertEmail is given.
param functionAppName string
param functionName string = 'hourly_hunts'
param applicationInsightsId string
param location string = resourceGroup().location
param tags object = {}

@description('Optional e-mail address that receives the alerts; empty: alerts fire without an action group.')
param alertEmail string = ''

var emailEnabled = !empty(alertEmail)
var requestsOfTheFunction = 'requests | where cloud_RoleName =~ \'${functionAppName}\' and operation_Name =~ \'${functionName}\''

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (emailEnabled) {
  name: 'ag-${functionAppName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'huntwire'
    enabled: true
    emailReceivers: [
      {
        name: 'huntwire-email'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource failedInvocations 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-${functionAppName}-failed-runs'
  location: location
  tags: tags
  properties: {
    displayName: 'huntwire: failed hunt runs'
    description: 'A run of the hunt function failed: a hunt failed or findings could not be delivered to Teams (they stay pending). Run huntwire status.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '${requestsOfTheFunction} | where success == false | summarize Failed = count()'
          timeAggregation: 'Total'
          metricMeasureColumn: 'Failed'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: emailEnabled ? [
        actionGroup.id
      ] : []
    }
  }
}

resource noInvocation 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-${functionAppName}-no-runs'
  location: location
  tags: tags
  properties: {
    displayName: 'huntwire: no hunt run for 2 hours'
    description: 'The hunt function has not run for 2 hours: the timer stopped or the app is down. Threat hunts are not running.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT30M'
    windowSize: 'PT2H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '${requestsOfTheFunction} | summarize Invocations = count()'
          timeAggregation: 'Total'
          metricMeasureColumn: 'Invocations'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: emailEnabled ? [
        actionGroup.id
      ] : []
    }
  }
}

output failedRunsAlertId string = failedInvocations.id
output noRunsAlertId string = noInvocation.id
