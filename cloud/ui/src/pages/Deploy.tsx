// Deploy a published version: the strategy's settings with seed 001's
// defaults, the health rule in words, the rehearsal on simulated twins,
// targets with a preview.

import { useEffect, useState } from "react";
import { ApiError, get, idempotencyKey, post } from "../api";
import { Can } from "../auth";
import { ErrorBox, useLoad } from "../components/common";
import Targets, { NO_TARGETS, targetBody } from "../components/Targets";
import type { TargetChoice } from "../components/Targets";
import { Link, navigate } from "../router";
import type { Strategy } from "../strategies";
import { configBody, HEALTH_DEFAULT, healthInWords, RATE, REHEARSAL_RUNS_DEFAULT, rehearseByDefault, STRATEGIES } from "../strategies";
import type { Preview } from "../components/Targets";

export default function Deploy({ id }: { id: string }) {
  const data = useLoad(async () => {
    const [flow, versions] = await Promise.all([get(`/flows/${id}`), get(`/flows/${id}/versions`)]);
    return { flow, versions: versions.versions as any[] };
  }, [id]);
  const [version, setVersion] = useState<string>("");
  const [types, setTypes] = useState<string[]>([]);
  const [strategy, setStrategy] = useState<Strategy>("rolling");
  const [values, setValues] = useState<Record<string, unknown>>({});
  const [health, setHealth] = useState({ ...HEALTH_DEFAULT });
  const [targets, setTargets] = useState<TargetChoice>(NO_TARGETS);
  const [start, setStart] = useState(true);
  const [rehearseChoice, setRehearse] = useState<boolean | null>(null); // null: the API's default for the strategy
  const [rehearsalRuns, setRehearsalRuns] = useState(String(REHEARSAL_RUNS_DEFAULT));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [key] = useState(idempotencyKey);
  const [preview, setPreview] = useState<Preview>({ targeted: 0, missing: 0 });

  useEffect(() => {
    const vs = data.data?.versions;
    if (vs?.length && !version) setVersion(String(vs[vs.length - 1].version));
  }, [data.data]);
  useEffect(() => {
    const v = data.data?.versions.find((x) => String(x.version) === version);
    setTypes(v?.types || []);
  }, [version, data.data]);

  const settings = STRATEGIES[strategy].settings;
  const rehearse = rehearseChoice ?? rehearseByDefault(strategy, preview.targeted);
  const val = (k: string, d: unknown) => (values[k] === undefined ? d : values[k]);

  async function submit() {
    setBusy(true); setError(null);
    try {
      const body: Record<string, unknown> = { flow_id: id, version: Number(version), strategy, ...targetBody(targets),
                                              config: configBody(strategy, values, health), rehearse };
      if (rehearse && rehearsalRuns.trim() !== String(REHEARSAL_RUNS_DEFAULT)) body.rehearsal_runs = Number(rehearsalRuns) || rehearsalRuns;
      const dep = await post("/deployments", body, { "Idempotency-Key": key });
      if (start) await post(`/deployments/${dep.id}/start`);
      navigate(`/deployments/${dep.id}`);
    } catch (e) {
      setError(e instanceof ApiError && e.body.missing
        ? Object.assign(e, { message: `${e.message}: ${Object.entries(e.body.missing as Record<string, string[]>).map(([d, t]) => `${d} lacks ${t.join(", ")}`).join("; ")}` })
        : e);
    } finally {
      setBusy(false);
    }
  }

  if (data.error) return <ErrorBox error={data.error} />;
  if (!data.data) return <p className="loading">Loading…</p>;
  const { flow, versions } = data.data;
  if (!versions.length) return <section><h1>Deploy {flow.name}</h1><p>Publish the flow first: only published versions deploy. <Link to={`/flows/${id}`}>Back to the flow</Link></p></section>;
  return (
    <section>
      <h1>Deploy {flow.name}</h1>
      <Can role="operator">
        <form className="deploy-form" onSubmit={(e) => { e.preventDefault(); submit(); }}>
          <div className="card">
            <label>Version<select name="version" value={version} onChange={(e) => setVersion(e.target.value)}>
              {[...versions].reverse().map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}</select></label>
            <p className="hint">Node types: {types.join(", ") || "—"}</p>
          </div>
          <div className="card">
            <label>Strategy<select name="strategy" value={strategy} onChange={(e) => { setStrategy(e.target.value as Strategy); setValues({}); }}>
              {Object.entries(STRATEGIES).map(([k, s]) => <option key={k} value={k}>{s.label}</option>)}</select></label>
            <p className="hint">{STRATEGIES[strategy].about}</p>
            <div className="settings">
              {settings.map((s) => (
                <div className="field" key={s.key}>
                  {s.kind === "bool" ? (
                    <label className="check"><input type="checkbox" name={s.key} checked={val(s.key, s.default) as boolean}
                                                    onChange={(e) => setValues({ ...values, [s.key]: e.target.checked })} />{s.label}</label>
                  ) : (
                    <label>{s.label}<input name={s.key} value={String(val(s.key, s.default))} inputMode={s.kind === "duration" ? "text" : "numeric"}
                                           onChange={(e) => setValues({ ...values, [s.key]: e.target.value })} /></label>
                  )}
                  <span className="hint">{s.help} (default {String(s.default)})</span>
                </div>
              ))}
            </div>
          </div>
          {strategy !== "blue_green" && (
            <details className="card">
              <summary>Rate control (optional)</summary>
              <div className="settings">
                {RATE.map((s) => (
                  <div className="field" key={s.key}>
                    <label>{s.label}<input name={s.key} inputMode="decimal" value={String(values[s.key] ?? "")}
                                           onChange={(e) => setValues({ ...values, [s.key]: e.target.value })} /></label>
                    <span className="hint">{s.help}</span>
                  </div>
                ))}
              </div>
            </details>
          )}
          <fieldset className="card">
            <legend>Health rule</legend>
            <div className="settings">
              <label>Runs<input name="health-runs" inputMode="numeric" value={health.runs} onChange={(e) => setHealth({ ...health, runs: Number(e.target.value) || 0 })} /></label>
              <label>Seconds<input name="health-seconds" inputMode="numeric" value={health.seconds} onChange={(e) => setHealth({ ...health, seconds: Number(e.target.value) || 0 })} /></label>
              <label>Max error rate<input name="health-max-error-rate" inputMode="decimal" value={health.max_error_rate}
                                          onChange={(e) => setHealth({ ...health, max_error_rate: Number(e.target.value) })} /></label>
            </div>
            <p className="hint" data-testid="health-words">{healthInWords(health)}</p>
          </fieldset>
          <fieldset className="card">
            <legend>Rehearsal</legend>
            <label className="check"><input type="checkbox" name="rehearse" checked={rehearse}
                                            onChange={(e) => setRehearse(e.target.checked)} />Rehearse on simulated twins first</label>
            {rehearse && (
              <label>Twin runs<input name="rehearsal-runs" inputMode="numeric" value={rehearsalRuns} onChange={(e) => setRehearsalRuns(e.target.value)} /></label>
            )}
            <p className="hint" data-testid="rehearsal-words">{rehearse
              ? "Before any device is sent anything, the real firmware runs this version and the one the targets run now on simulated twins, fed the readings the targets recorded; a new node error, running out of memory or a budget hit fails the deployment and quarantines the version. It starts by itself once the rehearsal passes."
              : "No rehearsal: the devices get the version as soon as it starts (the health rule still applies on each)."}
              {rehearseChoice === null ? ` (the default for ${STRATEGIES[strategy].label.toLowerCase()}${strategy === "all_at_once" ? " on more than one device" : ""})` : ""}</p>
          </fieldset>
          <div className="card"><Targets value={targets} onChange={setTargets} types={types} onPreview={setPreview} /></div>
          <ErrorBox error={error} />
          <div className="actions">
            <label className="check"><input type="checkbox" checked={start} onChange={(e) => setStart(e.target.checked)} />start at once</label>
            <button type="submit" className="primary" disabled={busy || preview.targeted === 0 || preview.missing > 0}>Create deployment</button>
            {preview.targeted === 0 && <span className="hint">choose the targets first</span>}
            {preview.missing > 0 && <span className="bad">{preview.missing} target{preview.missing > 1 ? "s lack" : " lacks"} a node this version uses: the API would refuse it</span>}
          </div>
        </form>
      </Can>
    </section>
  );
}
