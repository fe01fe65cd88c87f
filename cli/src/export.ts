/** `edgetune export`: writes the model's self-contained bundle (`GET /v1/models/:id/bundle`) to a folder. */
import fs from "node:fs";
import path from "node:path";
import type { Edgetune } from "../../sdk/index";

export async function exportBundle(client: Edgetune, modelId: string, dir: string): Promise<string[]> {
  const bundle = await client.models.bundle(modelId);
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const write = (name: string, content: string | Uint8Array) => {
    fs.writeFileSync(path.join(dir, name), content);
    files.push(name);
  };
  if (Array.isArray(bundle.files)) {
    for (const f of bundle.files as { name: string; base64?: string; text?: string }[]) write(f.name, f.text ?? Buffer.from(f.base64 ?? "", "base64"));
  } else {
    write("bundle.json", JSON.stringify(bundle, null, 2));
  }
  return files;
}
