/** uPlot charts as Preact components: sized to their container, updated in place when data changes (live curves). */
import { h } from "preact";
import { useEffect, useRef } from "preact/hooks";
import htm from "htm";
import uPlot from "uplot";

const html = htm.bind(h);

// Colour-blind-safe pair (Okabe-Ito blue and vermillion), both at least 3:1 against white.
export const TRAIN_COLOUR = "#0072b2";
export const VAL_COLOUR = "#c2410c";
const AXIS = { stroke: "#333", grid: { stroke: "#e5e5e5" }, ticks: { stroke: "#ccc" } };

interface ChartProps {
  /** What the chart shows, for screen readers (the canvas itself says nothing). */
  label: string;
  options: Omit<uPlot.Options, "width" | "height">;
  data: uPlot.AlignedData;
  height?: number;
}

export function Chart({ label, options, data, height = 240 }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current!;
    const width = Math.max(200, el.clientWidth || 320);
    plot.current = new uPlot({ ...options, width, height, legend: { show: false } } as uPlot.Options, data, el);
    const observer = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (plot.current && Math.abs(plot.current.width - w) > 2) plot.current.setSize({ width: w, height });
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return html`<div class="chart" role="img" aria-label=${label} ref=${box}></div>`;
}

/** Loss or accuracy over epochs, train and validation. */
export function curveOptions(yLabel: string, percent: boolean): Omit<uPlot.Options, "width" | "height"> {
  const fmt = (v: number) => (percent ? `${Math.round(v * 100)}%` : v.toFixed(2));
  return {
    scales: { x: { time: false }, y: percent ? { range: [0, 1] } : { auto: true } },
    axes: [
      { ...AXIS, label: "epoch" },
      { ...AXIS, label: yLabel, values: (_u: uPlot, vals: number[]) => vals.map(fmt), size: 56 },
    ],
    series: [
      {},
      { label: "train", stroke: TRAIN_COLOUR, width: 2, spanGaps: true, points: { show: false } },
      { label: "validation", stroke: VAL_COLOUR, width: 2, dash: [6, 4], spanGaps: true, points: { show: false } },
    ],
  };
}

/** Per-label image counts: train and val bars side by side. */
export function labelBarOptions(names: string[]): Omit<uPlot.Options, "width" | "height"> {
  const bars = uPlot.paths.bars!;
  return {
    scales: { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [
      { ...AXIS, values: (_u: uPlot, vals: number[]) => vals.map((v) => (Number.isInteger(v) ? names[v] ?? "" : "")), incrs: [1], rotate: names.length > 6 ? -45 : 0, size: names.length > 6 ? 80 : 40 } as uPlot.Axis,
      { ...AXIS, label: "images", size: 50 },
    ],
    series: [
      {},
      { label: "train", fill: TRAIN_COLOUR, stroke: TRAIN_COLOUR, paths: bars({ size: [0.38, 60], align: -1 }), points: { show: false } },
      { label: "val", fill: VAL_COLOUR, stroke: VAL_COLOUR, paths: bars({ size: [0.38, 60], align: 1 }), points: { show: false } },
    ],
  };
}

/** Reliability diagram: accuracy against confidence per bin, with the diagonal of perfect calibration. */
export function reliabilityOptions(): Omit<uPlot.Options, "width" | "height"> {
  const pct = (_u: uPlot, vals: number[]) => vals.map((v) => `${Math.round(v * 100)}%`);
  return {
    scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
    axes: [
      { ...AXIS, label: "confidence", values: pct },
      { ...AXIS, label: "accuracy", values: pct, size: 56 },
    ],
    series: [
      {},
      { label: "perfect calibration", stroke: "#767676", width: 1, dash: [4, 4], points: { show: false }, spanGaps: true },
      { label: "model", stroke: TRAIN_COLOUR, width: 2, points: { show: true, size: 8, fill: TRAIN_COLOUR }, spanGaps: true },
    ],
  };
}
