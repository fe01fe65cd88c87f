/**
 * The image pipeline inside workerd: the decoders load from `.wasm` module imports (workers/inference/codecs.ts) and
 * turn the same bytes into bit-identical pixels and model inputs as the runner does in Node.
 *
 * How parity is checked: the two fixture files below are fixed bytes (made once in Node by the recipe in
 * tests/node/image-pipeline.test.ts, which also checks that it still reproduces them), and the expected values are
 * SHA-256 digests of the decoded RGBA and of the Float32 outputs, computed in Node. tests/node/image-pipeline.test.ts
 * asserts the very same constants, so if either runtime drifts, one of the two suites fails. When preprocessing
 * changes on purpose, bump PREPROCESS_VERSION and update the digests in both files.
 *
 * Isolation: the codecs are an isolate-wide singleton; nothing here depends on test order.
 */
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../shared/image/decode";
import { isImageError } from "../../shared/image/errors";
import { PREPROCESS_VERSION, preprocessImage, type PreprocessSpec } from "../../shared/image/preprocess";
import { getWorkerCodecs } from "../../workers/inference/codecs";

// 40x30 JPEG (mozjpeg q90) with EXIF orientation 6: decodes upright to 30x40.
const FIXTURE_JPEG_BASE64 =
  "/9j/4QAiRXhpZgAATU0AKgAAAAgAAQESAAMAAAABAAYAAAAAAAD/4AAQSkZJRgABAQAAAQABAAD/2wCEAAMDAwMDAwQEBAQFBQUFBQcHBgYHBwsI" +
  "CQgJCAsRCwwLCwwLEQ8SDw4PEg8bFRMTFRsfGhkaHyYiIiYwLTA+PlQBAwMDAwMDBAQEBAUFBQUFBwcGBgcHCwgJCAkICxELDAsLDAsRDxIPDg8S" +
  "DxsVExMVGx8aGRofJiIiJjAtMD4+VP/CABEIAB4AKAMBEQACEQEDEQH/xAAwAAADAQEAAAAAAAAAAAAAAAAFBwgGCQEAAwEBAQEAAAAAAAAAAAAA" +
  "BgcIBQMBBP/aAAwDAQACEAMQAAAA5u6ei4TXs4jXuxVptnpqN4urJI01Hg66nx6NLmwUXB9JtQT3UaAF8FNj4YTH3dHRP2zT6i2Ry2TCFOzCGOlG" +
  "2Jt//8QALBAAAQMDBAECBQUBAAAAAAAAAQIDBAUREgAGByETIzEUIjNhgRUkQUJSsf/aAAgBAQABPwCk03PHq99UnaGePp3vqlcaZ4+je/21SeGP" +
  "13H9viyn7ZZZf8UNDhWj0WO3Jqj0SCytwNpdkuoZRmQSEgrIBJA1s2m5+Pq97fjWzdo5+P0731Wty7b2vIbpwhOVGeltKzFaUAhsLIt5nDfxrx7S" +
  "AFH8HUKbyXulacqg5T2S4haWKekxggpTj04m7hB9yCoi+o/HuzNmfDiuzWIrj2JQzip12yr2V42wpeBxIytbXGNNz8PV721uKuyNr7bhCnIbE+ou" +
  "KailaSsNoAu49a2ObdwAk/yq/Y1xzx7HjRxIkeNplpsuOuuEIQ2hAuVKJ6AA0jc9crEx2nbSR8FTfpicG7SXhYpUpJV9NCr3TYBYte41Jj7F4ohP" +
  "GosvTp7DKFmBGbupJcB8YcWflQFGw/0AQbW1wtBRWVsNqshtAQbe+QcFwfsRqUWtz8mT1ZKLMBwU9hK0JSUCKSlwDG9wXCpQJ7sdbrkPza+1s+K8" +
  "WYERuOuYjHHzvrSHU3IJybSkggdfNqsyFbRRB23RvQnVCIl92cOiywpSkYs27Diik3V/Ue3ftyfMjbFZpFLgQ47811XkCn0Hw3awzWvEhSjZ0BIF" +
  "r3JOv//EADMRAAAFAgQDBgMJAAAAAAAAAAECAwQRBRIABhMhFCKBBxUjMUGRMlFSFhckM0JhYoOS/9oACAECAQE/AHjruWd7rumnHvMzh5Wu5Z5r" +
  "rumnHvMzh5mruWee67ppx7zM4eZ6+9afF4SitP79fX/xoOULP5Rd6kHf7ePmqpkmZFnSlomEiRDGMmBdpgsyAziuOu5bt7rumnHvMziuVruW7muu" +
  "6ace8zOGNKqnb6kZzrlpOWmhhKCxwFyLrW+gvJpOEBJAjIxd6l810MqZQKMNiu1BKYoqOR1BKEz8I8s/uABGFczV1TVGnoKOChMnkEyJiWNrzDAi" +
  "N3lM4za67lv3uu6ace8zOKZT0u32qL8UYzTLVJKB1oHWF0LkeUnmQUHCVgyIXRPqU2+Z8zK0tXSSuVUVMBSELMlHyAAAJuE04NSWGWUCOqyPFOjc" +
  "3D3+E3gQEAGJ1DfP9OElMw1lcnDHIi2WOYvEKmtAgEHmtLuJ9um0TjtBcG7UX7hgf8FT2KKCwpD44rpVBIFkjh8GiumUNh5oERDcsy3vynlRmBQA" +
  "yj8p3JhKYYAT7h5+tsAOKImnQqcFbUICzl4ZYrY0/kJpCJDQH1GGemKekChlKo88duRY6aTf01EwAwif5l38vXGVkFc6Ma1XXa6pHbBsCrpRM0Gc" +
  "omWBADDMhr3jJzD8Zd9jTP8A/8QALREAAQMDAwIFAgcAAAAAAAAAAQIDEQQFBgASISIxEzJBQmEHFBUlQ1FigbH/2gAIAQMBAT8AZ6fiNM3Tb7oj" +
  "TOUbffEaZz38K/Vlw/MRH+g6tWf3K5PFmgZqKp1CCsoZQpxW0GJITPGq7pn0jVddNs9URrF8YvV9ZNYahFHSFZSH1pJUspBnw0e9M8Ekgf2NUVpw" +
  "mxJ4okVboQpKnash8rBVPkPQCOwIAOrfkWSZJ4htVI6+hudzkhDciJTvWUp3cjiZ1kXTv9NYljrN9vT5rCs0lGhK3wkhJWonobmZ2rgkkeg9Dq+Z" +
  "E888GWQtx1xYQhCAVKWpRgAAdydWzFrXbqdqtyA/c1vnNLvlhrkEBUedQjn2mYg6u2TXFyxVeQVbxo7PTeeqV1Fw7wja0gcqUSqATCZ7qGs1/LUO" +
  "KHUtRUJ7QUGCPkHVipDY8JohCQ7VoNW6pKiQov8AKO/YhG0EDWFW9imtKsifbDlXULdTTKmfCaSS2YBAhaiDJ/bWL29GQrqb1cYdpaOoLTdL3Drq" +
  "UhUufwG4dPqe+vrdmlyz/LqzF3Kh2ms1jDDtSlCUh52rqW1Kb2LO4BtKNf/Z";
// 21x15 RGBA PNG with partial transparency (flattened onto white by preprocessing).
const FIXTURE_PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAABUAAAAPCAYAAAALWoRrAAAFBklEQVR4AQH7BAT7AAAAAP8FAAkRCgASIg8AG/8UACREGQAtVR4ANv8jAD93KABI" +
  "iC0AUf8yAFqqNwBjuzwAbP9BAHXdRgB+7ksAh/9QAJAQVQCZIVoAov9fAKtDZAC0VAADAAkHCAEAGA0CG/8SAxI6FwQtSxwFJP8hBj9tJgc2fisI" +
  "Uf8wCUigNQpjsToLWv8/DHXTRA1s5EkOh/9OD34GUxCZF1gRkP9dEqs5YhOiSmcUvf8ABgASDgsCG/8QBAAwFQYJQRoINv8fCj9jJAwkdCkOLf8u" +
  "EFqWMxJjpzgUSP89FlHJQhh+2kcah/9MHGz8UR51DVYgov9bIqsvYCSQQGUmmf9qKMZiAAkAG/8OAxImEwYJNxgJAP8dDD9ZIg82aicSLf8sFSSM" +
  "MRhjnTYbWv87HlG/QCFI0EUkh/9KJ37yTyp1A1QtbP9ZMKslXjOiNmM2mf9oOZBYbTzPaQAMACQcEQQtLRYINv8bDD9PIBAAYCUUCf8qGBKCLxwb" +
  "kzQgbP85JHW1Pih+xkMsh/9IMEjoTTRR+VI4Wv9XPGMbXEC0LGFEvf9mSMZOa0zPX3BQkP8ADwAtIxQFJP8ZCj9FHg82ViMUCf8oGQB4LR4biTIj" +
  "Ev83KHWrPC1svEEyh/9GN37eSzxR71BBSP9VRmMRWktaIl9Qvf9kVbREaVrPVW5fxv9zZJl3ABIANv8XBj87HAwkTCESLf8mGBJuKx4bfzAkAP81" +
  "KgmhOjB+sj82h/9EPGzUSUJ15U5IWv9TTmMHWFRIGF1aUf9iYMY6Z2bPS2xstP9xcr1tdniifgAVAD8xGgc2Qh8OLf8kFSRkKRwbdS4jEv8zKgmX" +
  "ODEAqD04h/9CP37KR0Z120xNbP9RVGP9VltaDltiUf9gaUgwZXDPQWp3xv9vfr1jdIW0dHmMq/8AGABIOB0IUf8iEFpaJxhjaywgbP8xKHWNNjB+" +
  "njs4h/9AQADARUgJ0UpQEv9PWBvzVGAkBFloLf9ecDYmY3g/N2iA2P9tiOFZcpDqaneY8/98oPyMABsAUf8gCUhQJRJjYSobWv8vJHWDNC1slDk2" +
  "h/8+P362Q0gJx0hRAP9NWhvpUmMS+ldsLf9cdSQcYX4/LWaHNv9rkOFPcJnYYHWi8/96q+qCf7QFkwAeAFpGIwpjVygUSP8tHlF5Mih+ijcyh/88" +
  "PGysQUZ1vUZQEv9LWhvfUGQA8FVuCf9aeDYSX4I/I2SMJP9pli1FbqDqVnOq8/94tNh4fb7hiYLIDv8AIQBjTSYLWv8rFlFvMCFIgDUsh/86N36i" +
  "P0J1s0RNbP9JWBvVTmMS5lNuCf9YeQAIXYQ/GWKPNv9nmi07bKUkTHGw8/92u+pue8bhf4DR2P+F3BehACQAbP8pDHVlLhh+djMkh/84MEiYPTxR" +
  "qUJIWv9HVGPLTGAk3FFsLf9WeDb+W4Q/D2CQAP9lnAkxaqgSQm+0G/90wPxkecwFdX7YDv+D5BeXiPDYqAAnAHVbLA1sbDEah/82J36OOzRRn0BB" +
  "SP9FTmPBSlta0k9oLf9UdST0WYI/BV6PNv9jnAknaKkAOG22G/9ywxJad9AFa3zd/P+B6heNhvcOnosE4f8AKgB+Yi8Oh/80HGyEOSp1lT44Wv9D" +
  "RmO3SFRIyE1iUf9ScDbqV34/+1yMJP9hmi0dZqgSLmu2G/9wxABQddIJYXrgDv9/7heDhPz8lIkKBf+OGOq2E+XkE85odZEAAAAASUVORK5CYII=";

const SPECS: Record<string, PreprocessSpec> = {
  crop: { input_size: [32, 40], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: "center_crop" },
  squash: { input_size: [24, 24], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: "squash" },
};

/** SHA-256 (hex) computed in Node for PREPROCESS_VERSION "img-1". */
const EXPECTED = {
  jpeg: {
    width: 30,
    height: 40,
    pixels: "8fd6604e261d85d6a76248d368a02126e780b39efa966f8081ec0833d65a645d",
    crop: "1021554fbfe411d569da6d170b4b615f604cd8b96300798983daca5de5c9c6fb",
    squash: "c8fb0cee01661ba995e579c7fe829f4bbf9dc6998a058637c5600247fa6e81db",
  },
  png: {
    width: 21,
    height: 15,
    pixels: "b1e04ea7d9df37b61ca11b7f5c35b57873b2a99247173f335c36ffe39bf0f8bc",
    crop: "b33a701a43131378bfd702bee6dc56e8e9a1ab47106ff9cf3a3d3e4b6fb55ed8",
    squash: "2f91ed672161682c9c7ee2650742e79e401f823b28326b7330aac1bc88bd6ddf",
  },
};

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function sha256(view: ArrayBufferView): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("image pipeline in workerd", () => {
  it("keys outputs with the preprocessing version the digests were made for", () => {
    expect(PREPROCESS_VERSION).toBe("img-1");
  });

  for (const format of ["jpeg", "png"] as const) {
    it(`decodes the ${format} fixture to the same upright RGBA as Node`, async () => {
      const bytes = fromBase64(format === "jpeg" ? FIXTURE_JPEG_BASE64 : FIXTURE_PNG_BASE64);
      const image = await decodeImage(bytes, await getWorkerCodecs());
      expect([image.width, image.height]).toEqual([EXPECTED[format].width, EXPECTED[format].height]);
      expect(await sha256(image.data)).toBe(EXPECTED[format].pixels);
    });

    it(`preprocesses the ${format} fixture to bit-identical Float32 output as Node, for center_crop and squash`, async () => {
      const bytes = fromBase64(format === "jpeg" ? FIXTURE_JPEG_BASE64 : FIXTURE_PNG_BASE64);
      const image = await decodeImage(bytes, await getWorkerCodecs());
      expect(await sha256(preprocessImage(image, SPECS.crop!))).toBe(EXPECTED[format].crop);
      expect(await sha256(preprocessImage(image, SPECS.squash!))).toBe(EXPECTED[format].squash);
    });
  }

  it("initialises the codecs once for concurrent first callers", async () => {
    const [a, b] = await Promise.all([getWorkerCodecs(), getWorkerCodecs()]);
    expect(a).toBe(b);
  });

  it("rejects undecodable data as corrupt_image and keeps decoding afterwards", async () => {
    const codecs = await getWorkerCodecs();
    const jpeg = fromBase64(FIXTURE_JPEG_BASE64);
    // A structurally valid JPEG whose scan parameters libjpeg refuses: Se (spectral end) 63 -> 70 in the SOS header.
    const broken = jpeg.slice();
    const sos = findMarker(broken, 0xda);
    const componentCount = broken[sos + 4]!;
    broken[sos + 4 + 1 + 2 * componentCount + 1] = 70;
    for (let i = 0; i < 20; i++) {
      const error = await decodeImage(broken, codecs).catch((e: unknown) => e);
      expect(isImageError(error) && error.code).toBe("corrupt_image");
    }
    const image = await decodeImage(jpeg, codecs);
    expect(await sha256(image.data)).toBe(EXPECTED.jpeg.pixels);
  });
});

/** Offset of the first 0xFF marker byte pair with this marker code (headers only: call before the first scan). */
function findMarker(bytes: Uint8Array, marker: number): number {
  let pos = 2;
  while (bytes[pos + 1] !== marker) pos += 2 + ((bytes[pos + 2]! << 8) | bytes[pos + 3]!);
  return pos;
}
