/**
 * Offline validation of the Kubernetes manifests in deploy/k8s, with no cluster and no kubectl:
 *
 * 1. Schema: every object is checked by `kubernetes-models` (the Kubernetes OpenAPI schemas compiled
 *    to ajv validators): required fields, types, enums, int-or-string, formats.
 * 2. Unknown fields: those validators allow extra properties, so each object is also type-checked as
 *    a TypeScript literal of the package's interface (`const o: IDeployment = {...}`): excess-property
 *    checks catch a misspelt field anywhere (what `kubeconform -strict` would catch).
 * 3. References: selectors match their pod templates, Services and PodDisruptionBudgets select a
 *    workload, HPAs and StatefulSets name objects that exist, probes name declared ports, and
 *    Secrets/ConfigMaps referenced by pods exist.
 *
 *   npx tsx test/deploy/validateK8s.ts [dir]      # prints what it checked; exit 1 on an error
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

export interface K8sReport {
  objects: string[];
  kinds: string[];
  errors: string[];
}

type Obj = { apiVersion: string; kind: string; metadata?: { name?: string; labels?: Record<string, string> }; [k: string]: unknown };

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

export async function validateK8sManifests(dir: string): Promise<K8sReport> {
  const errors: string[] = [];
  const objects: Array<{ obj: Obj; where: string }> = [];
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
    docs.forEach((doc, i) => {
      const where = `${file}#${i + 1}`;
      if (doc.errors.length) return errors.push(`${where}: YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
      const obj = doc.toJS() as Obj | null;
      if (!obj) return;
      if (obj.kind === 'Kustomization') {
        for (const r of (obj.resources as string[] | undefined) ?? []) {
          try {
            readFileSync(join(dir, r));
          } catch {
            errors.push(`${where}: Kustomization resource ${r} does not exist`);
          }
        }
        return;
      }
      objects.push({ obj, where: `${where} ${obj.kind}/${obj.metadata?.name}` });
    });
  }

  // 1. Schema validation.
  const req = createRequire(import.meta.url);
  for (const { obj, where } of objects) {
    if (!obj.apiVersion || !obj.kind) {
      errors.push(`${where}: apiVersion and kind are required`);
      continue;
    }
    type ModelClass = new (data: unknown) => { validate(): void };
    let Model: ModelClass | undefined;
    try {
      const mod = (await import(pathToFileURL(req.resolve(`kubernetes-models/${obj.apiVersion}`)).href)) as Record<string, ModelClass | undefined>;
      Model = mod[obj.kind];
    } catch {
      Model = undefined;
    }
    if (!Model) {
      errors.push(`${where}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (error) {
      errors.push(`${where}: ${(error as Error).message}`);
    }
  }

  // 2. Unknown fields: a TypeScript literal of each object, type-checked in memory.
  const checkFile = resolve(import.meta.dirname, '__k8s_manifests_check__.ts');
  const lines: string[] = [];
  objects.forEach(({ obj, where }, i) => {
    lines.push(`// ${where}`);
    lines.push(`import type { I${obj.kind} as T${i} } from 'kubernetes-models/${obj.apiVersion}/${obj.kind}';`);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(obj)};`);
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    name === checkFile ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === checkFile || fileExists(name);
  const program = ts.createProgram([checkFile], options, host);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (d.file?.fileName !== checkFile) continue;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    const origin = lines[line - 2]?.slice(3) ?? '?';
    errors.push(`${origin}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n').split('\n').slice(-1)[0]}`);
  }

  // 3. References between the objects.
  const byKind = (kind: string) => objects.filter((o) => o.obj.kind === kind).map((o) => o.obj);
  const named = (kind: string, name: string | undefined) => byKind(kind).find((o) => o.metadata?.name === name);
  type Pod = { metadata?: { labels?: Record<string, string> }; spec: { containers: Array<Record<string, any>>; volumes?: Array<Record<string, any>> } };
  const workloads = [...byKind('Deployment'), ...byKind('StatefulSet')] as Array<Obj & { spec: { selector: { matchLabels: Record<string, string> }; template: Pod; serviceName?: string } }>;
  for (const w of workloads) {
    const at = `${w.kind}/${w.metadata?.name}`;
    if (!matches(w.spec.selector.matchLabels, w.spec.template.metadata?.labels)) errors.push(`${at}: selector does not match the pod template's labels`);
    if (w.kind === 'StatefulSet') {
      const svc = named('Service', w.spec.serviceName) as { spec?: { clusterIP?: string } } | undefined;
      if (svc?.spec?.clusterIP !== 'None') errors.push(`${at}: serviceName ${w.spec.serviceName} is not a headless Service here`);
    }
    for (const c of w.spec.template.spec.containers) {
      const ports = new Set((c.ports ?? []).flatMap((p: { name?: string; containerPort: number }) => [p.name, p.containerPort]));
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const port = c[probe]?.httpGet?.port;
        if (port !== undefined && !ports.has(port)) errors.push(`${at}: ${probe} uses port ${port}, not declared by container ${c.name}`);
      }
      for (const ref of c.envFrom ?? []) {
        if (ref.secretRef && !named('Secret', ref.secretRef.name)) errors.push(`${at}: envFrom Secret ${ref.secretRef.name} is not defined`);
        if (ref.configMapRef && !named('ConfigMap', ref.configMapRef.name)) errors.push(`${at}: envFrom ConfigMap ${ref.configMapRef.name} is not defined`);
      }
      for (const e of c.env ?? []) {
        const s = e.valueFrom?.secretKeyRef;
        if (s && !(named('Secret', s.name) as any)?.stringData?.[s.key] && !(named('Secret', s.name) as any)?.data?.[s.key]) errors.push(`${at}: env ${e.name} refers to a missing Secret key ${s.name}/${s.key}`);
      }
    }
    for (const v of w.spec.template.spec.volumes ?? []) {
      if (v.configMap && !named('ConfigMap', v.configMap.name)) errors.push(`${at}: volume ConfigMap ${v.configMap.name} is not defined`);
    }
  }
  for (const svc of byKind('Service') as Array<Obj & { spec: { selector?: Record<string, string> } }>) {
    if (!workloads.some((w) => matches(svc.spec.selector, w.spec.template.metadata?.labels))) errors.push(`Service/${svc.metadata?.name}: its selector matches no workload`);
  }
  for (const pdb of byKind('PodDisruptionBudget') as Array<Obj & { spec: { selector: { matchLabels: Record<string, string> } } }>) {
    if (!workloads.some((w) => matches(pdb.spec.selector.matchLabels, w.spec.template.metadata?.labels))) errors.push(`PodDisruptionBudget/${pdb.metadata?.name}: its selector matches no workload`);
  }
  for (const hpa of byKind('HorizontalPodAutoscaler') as Array<Obj & { spec: { scaleTargetRef: { kind: string; name: string } } }>) {
    if (!named(hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name)) errors.push(`HorizontalPodAutoscaler/${hpa.metadata?.name}: target ${hpa.spec.scaleTargetRef.kind}/${hpa.spec.scaleTargetRef.name} is not defined`);
  }

  return { objects: objects.map((o) => o.where), kinds: [...new Set(objects.map((o) => o.obj.kind))], errors };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const dir = resolve(process.argv[2] ?? 'deploy/k8s');
  const report = await validateK8sManifests(dir);
  for (const o of report.objects) console.log(`checked ${o}`);
  for (const e of report.errors) console.error(`ERROR ${e}`);
  console.log(report.errors.length ? `${report.errors.length} error(s)` : `${report.objects.length} objects valid`);
  process.exit(report.errors.length ? 1 : 0);
}
