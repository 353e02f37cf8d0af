// Judges IAM requests with @cloud-copilot/iam-simulate, one JSON request per stdin line, one
// JSON verdict per stdout line (same order). Long-running: the sandbox starts it once.
//
// Request:  {"id", "principal", "action", "resource", "accountId", "context",
//            "identityPolicies": [{"name", "policy"}], "resourcePolicy": {...} | null}
// Verdict:  {"id", "result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Error",
//            "denials": [...], "grants": [...], "identity": [...], "resource": [...], "error": "..."}
//            (identity/resource: the identity and resource policy analyses' own results)
import { createInterface } from 'node:readline'
import { getDenialReasons, getGrantReasons, runSimulation } from '@cloud-copilot/iam-simulate'

function analyses(response) {
  if (response.resultType === 'single') return [response.result.analysis]
  return response.results.map((r) => r.analysis)
}

async function judge(request) {
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.accountId },
      contextVariables: request.context || {}
    },
    identityPolicies: request.identityPolicies || [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy || undefined
  }
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (response.resultType === 'error') {
    return { result: 'Error', error: response.errors.message, details: response.errors }
  }
  const denials = []
  const grants = []
  const identity = []
  const resource = []
  for (const analysis of analyses(response)) {
    if (!analysis) continue
    if (response.overallResult === 'Allowed') grants.push(...getGrantReasons(analysis))
    else denials.push(...getDenialReasons(analysis))
    if (analysis.identityAnalysis) identity.push(analysis.identityAnalysis.result)
    if (analysis.resourceAnalysis) resource.push(analysis.resourceAnalysis.result)
  }
  return { result: response.overallResult, denials, grants, identity, resource }
}

// Verdicts are written in request order even though judging is asynchronous.
let chain = Promise.resolve()
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  if (!line.trim()) return
  chain = chain.then(async () => {
    let id = null
    let verdict
    try {
      const request = JSON.parse(line)
      id = request.id ?? null
      verdict = await judge(request)
    } catch (err) {
      verdict = { result: 'Error', error: String(err && err.stack ? err.stack : err) }
    }
    process.stdout.write(JSON.stringify({ id, ...verdict }) + '\n')
  })
})
lines.on('close', () => {
  chain.then(() => process.exit(0))
})
