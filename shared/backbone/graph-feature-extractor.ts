/**
 * Builds the frozen feature extractor of a *graph* backbone (a TensorFlow GraphDef converted with
 * tensorflowjs_converter, e.g. a TF-Hub module): the same embedding contract as `buildFeatureExtractor` for layers
 * models, so a job can train on either and the Worker can serve either. Plain tfjs APIs only (no file system, no
 * `node:*`): it runs in the runner and in workerd.
 *
 * A graph model cannot be cut and re-wired like a Keras topology, so instead of a pruned model plus pooling layers,
 * each call runs `model.execute(images, featureNodes)` (tfjs executes only the nodes those outputs depend on, so the
 * classifier at the end of the graph is never computed) and pools the returned activations with plain ops.
 */
import type * as tfjs from "@tensorflow/tfjs";
import type { BaseFeatureExtractor, Tf } from "./feature-extractor";
import { getGraphInputNode, getInputShape, getWeightSpecs, isGraphModel, validateFeatureSpec } from "./model-json";
import type { BackboneBundle, FeatureSpec } from "./types";

/** The feature extractor of a graph model. */
export interface GraphFeatureExtractor extends BaseFeatureExtractor {
  readonly format: "graph-model";
  readonly model: tfjs.GraphModel;
  /**
   * True when the graph has control-flow or dynamic-shape ops, which tfjs runs only with `executeAsync`: then only
   * `embedAsync` works and `embed` throws.
   */
  readonly needsAsync: boolean;
}

/** tfjs's message for a graph that `execute` cannot run synchronously names `executeAsync`. */
const NEEDS_ASYNC_PATTERN = /executeAsync/;

/**
 * Loads `bundle` (a graph model) with `tf.loadGraphModel` from memory and returns an extractor whose embedding is,
 * per feature node in `spec.feature_layers` order, the global average of its `[n, h, w, c]` output over `h, w`
 * (`c` values) and, with "avg+max", then the global maximum (`c` more), all concatenated: `[n, dim]`.
 *
 * Runs one probe image of zeros through the graph once, to learn each feature node's channel count (GraphDefs rarely
 * record output shapes), to check every node really yields a 4-D activation, and to find out whether the graph needs
 * `executeAsync`. For MobileNet v1 0.25 at 224 × 224 that probe costs about 0.5 s on tfjs's cpu backend.
 *
 * @throws when the bundle is not a graph model, a feature node is unknown or not 4-D, or the graph has more than
 *   one Placeholder input.
 */
export async function buildGraphFeatureExtractor(tf: Tf, bundle: BackboneBundle, spec: FeatureSpec): Promise<GraphFeatureExtractor> {
  const { modelJson } = bundle;
  if (!isGraphModel(modelJson)) {
    throw new Error(`backbone ${bundle.name} is not a graph model; build it with buildFeatureExtractor (or buildAnyFeatureExtractor, which picks)`);
  }
  validateFeatureSpec(modelJson, spec);
  if (spec.pooling === "none") throw new Error(`backbone ${bundle.name}: a graph model's feature maps are not served unpooled (fine-tuning needs a layers model)`);
  const inputShape = getInputShape(modelJson, spec.input_size);
  const inputName = getGraphInputNode(modelJson).name;
  const featureNodes = [...spec.feature_layers];
  const extras = modelJson as { signature?: object; modelInitializer?: object };
  const model = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: getWeightSpecs(modelJson) as tfjs.io.WeightsManifestEntry[],
      weightData: bundle.weightData,
      format: "graph-model",
      // The signature maps friendly input/output names to nodes; the initializer fills hash tables. Both optional.
      ...(extras.signature ? { signature: extras.signature } : {}),
      ...(extras.modelInitializer ? { modelInitializer: extras.modelInitializer } : {}),
    }),
  );

  try {
    const asList = (result: tfjs.Tensor | tfjs.Tensor[]): tfjs.Tensor[] => (Array.isArray(result) ? result : [result]);
    /** `[n, H, W, C]` → one activation per feature node, by synchronous execution. */
    const run = (images: tfjs.Tensor4D) => asList(model.execute({ [inputName]: images }, featureNodes));
    /** The same for graphs with control flow or dynamic shapes. */
    const runAsync = async (images: tfjs.Tensor4D) => asList(await model.executeAsync({ [inputName]: images }, featureNodes));

    /** Activations `[n, h, w, c]` per node → `[n, dim]`: avg (and max) over h, w, concatenated in spec order. */
    const pool = (activations: tfjs.Tensor[]): tfjs.Tensor2D =>
      tf.tidy(() => {
        const pieces: tfjs.Tensor2D[] = [];
        activations.forEach((activation, index) => {
          if (activation.rank !== 4) {
            throw new Error(`feature node ${featureNodes[index]} outputs shape [${activation.shape}], expected [n, h, w, c]`);
          }
          pieces.push(tf.mean(activation, [1, 2]) as tfjs.Tensor2D);
          if (spec.pooling === "avg+max") pieces.push(tf.max(activation, [1, 2]) as tfjs.Tensor2D);
        });
        return pieces.length === 1 ? pieces[0]! : (tf.concat(pieces, 1) as tfjs.Tensor2D);
      });

    const embedOnceAsync = async (images: tfjs.Tensor4D): Promise<tfjs.Tensor2D> => {
      const activations = await runAsync(images);
      try {
        return pool(activations);
      } finally {
        tf.dispose(activations);
      }
    };

    // Probe: channel counts, ranks, and whether synchronous execution works at all.
    let needsAsync = false;
    let probeActivations: tfjs.Tensor[];
    const probe = tf.zeros([1, ...inputShape]) as tfjs.Tensor4D;
    try {
      try {
        probeActivations = run(probe);
      } catch (error) {
        if (!NEEDS_ASYNC_PATTERN.test((error as Error).message)) throw error;
        needsAsync = true;
        probeActivations = await runAsync(probe);
      }
    } finally {
      probe.dispose();
    }
    const layerChannels = probeActivations.map((activation, index) => {
      if (activation.rank !== 4) {
        tf.dispose(probeActivations);
        throw new Error(`feature node ${featureNodes[index]} outputs shape [${activation.shape}], expected [n, h, w, c]`);
      }
      return activation.shape[3]!;
    });
    tf.dispose(probeActivations);
    const dim = layerChannels.reduce((sum, channels) => sum + channels, 0) * (spec.pooling === "avg+max" ? 2 : 1);

    const embed = (images: tfjs.Tensor4D): tfjs.Tensor2D => {
      if (needsAsync) throw new Error(`backbone ${bundle.name} has control-flow or dynamic-shape ops; use embedAsync`);
      return tf.tidy(() => {
        const direct = pool(run(images));
        if (!spec.flip_average) return direct;
        const mirrored = pool(run(tf.reverse(images, 2)));
        return tf.mul(tf.add(direct, mirrored), 0.5) as tfjs.Tensor2D;
      });
    };

    const embedAsync = async (images: tfjs.Tensor4D): Promise<tfjs.Tensor2D> => {
      if (!needsAsync) return embed(images);
      const direct = await embedOnceAsync(images);
      if (!spec.flip_average) return direct;
      const flipped = tf.reverse(images, 2);
      const mirrored = await embedOnceAsync(flipped).finally(() => flipped.dispose());
      const averaged = tf.tidy(() => tf.mul(tf.add(direct, mirrored), 0.5) as tfjs.Tensor2D);
      tf.dispose([direct, mirrored]);
      return averaged;
    };

    return { format: "graph-model", model, inputShape, dim, layerChannels, needsAsync, embed, embedAsync, dispose: () => model.dispose() };
  } catch (error) {
    model.dispose();
    throw error;
  }
}
