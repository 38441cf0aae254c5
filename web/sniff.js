// Which chosen files are images the service will process, decided as the CLI does
// (imgbatch/files.py): the extension must say image AND the first bytes must say an image
// type the service accepts (a copy of chalicelib/domain/imaging.py's rules). All three
// copies are tested against tests/vectors/sniffing.json.

export const SNIFF_BYTES = 64;

// Image extensions, including those of types the service refuses (HEIC, PSD...): such a file
// is then skipped as "not supported", which says more than "not an image extension".
export const IMAGE_EXTENSIONS = new Set(
  (".jpg .jpeg .jpe .jfif .mpo .png .apng .gif .webp .tif .tiff .bmp .dib .ico .avif .avifs .tga " +
    ".heic .heif .jp2 .j2k .jpf .jpx .jxl .psd .ppm .pgm .pbm .pnm .pam .dds .qoi .icns .cur .exr .hdr").split(" "),
);

export const CONTENT_TYPES = {
  JPEG: "image/jpeg", PNG: "image/png", GIF: "image/gif", WEBP: "image/webp", TIFF: "image/tiff",
  BMP: "image/bmp", ICO: "image/vnd.microsoft.icon", AVIF: "image/avif", HEIF: "image/heif", TGA: "image/x-tga",
};

const bytesOf = (text) => Array.from(text, (c) => c.charCodeAt(0));
const REFUSED_MAGIC = [
  ["\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"],
  ["\xffO\xffQ", "JPEG 2000"],
  ["\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"],
  ["\xff\x0a", "JPEG XL"],
  ["BLP1", "BLP"],
  ["BLP2", "BLP"],
  ["DDS ", "DDS"],
  ["8BPS", "Photoshop PSD"],
  ["qoif", "QOI"],
  ["icns", "ICNS"],
  ["\x00\x00\x02\x00", "Windows cursor (CUR)"],
  ["v/1\x01", "OpenEXR"],
  ["#?RADIANCE", "Radiance HDR"],
  ["\x01\xda", "SGI"],
  ["SIMPLE  =", "FITS"],
].map(([magic, name]) => [bytesOf(magic), name]);
const AVIF_BRANDS = new Set(["avif", "avis"]);
const HEIF_BRANDS = new Set(["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"]);

function startsWith(head, magic) {
  if (typeof magic === "string") magic = bytesOf(magic);
  return head.length >= magic.length && magic.every((b, i) => head[i] === b);
}

const ascii = (head, start, end) => String.fromCharCode(...head.slice(start, end));
const u16le = (head, at) => head[at] | (head[at + 1] << 8);

/** ISO base media (AVIF, HEIF): the major brand and the compatible brands of the ftyp box. */
function ftypBrands(head) {
  if (head.length < 12 || ascii(head, 4, 8) !== "ftyp") return new Set();
  const boxSize = ((head[0] << 24) >>> 0) + (head[1] << 16) + (head[2] << 8) + head[3];
  const end = Math.min(boxSize, head.length);
  const brands = new Set([ascii(head, 8, 12)]);
  for (let i = 16; i < end - 3; i += 4) brands.add(ascii(head, i, i + 4));
  return brands;
}

// TGA has no magic: accept only headers the service's decoder would, so arbitrary binaries rarely match.
function looksLikeTga(head) {
  if (head.length < 18) return false;
  const [cmapType, imageType, depth, flags] = [head[1], head[2], head[16], head[17]];
  return (
    (cmapType === 0 || cmapType === 1) &&
    [1, 2, 3, 9, 10, 11].includes(imageType) &&
    (cmapType === 1) === (imageType === 1 || imageType === 9) &&
    (cmapType === 1 || head.slice(3, 8).every((b) => b === 0)) &&
    [1, 8, 16, 24, 32].includes(depth) &&
    (flags & 0xc0) === 0 &&
    u16le(head, 12) > 0 &&
    u16le(head, 14) > 0
  );
}

const intersects = (set, wanted) => [...set].some((x) => wanted.has(x));

/** The image format the service will process these first bytes as (Pillow's name), or null. */
export function sniffFormat(bytes) {
  const head = Array.from(bytes.slice(0, SNIFF_BYTES));
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "JPEG";
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "PNG";
  if (startsWith(head, "GIF87a") || startsWith(head, "GIF89a")) return "GIF";
  if (startsWith(head, "RIFF") && ascii(head, 8, 12) === "WEBP") return "WEBP";
  if (["II*\x00", "MM\x00*", "II+\x00", "MM\x00+"].some((m) => startsWith(head, m))) return "TIFF"; // and BigTIFF
  if (startsWith(head, "BM")) return "BMP";
  if (startsWith(head, [0, 0, 1, 0])) return "ICO";
  if (intersects(ftypBrands(head), AVIF_BRANDS)) return "AVIF";
  if (intersects(ftypBrands(head), HEIF_BRANDS)) return "HEIF"; // phone and camera photos (HEIC)
  if (looksLikeTga(head)) return "TGA"; // last: TGA has no magic (and can start like a CUR)
  return null;
}

/** A known image type the service refuses (HEIC, JPEG 2000, PSD...), by name, or null. */
export function refusedFormat(bytes) {
  const head = Array.from(bytes.slice(0, SNIFF_BYTES));
  for (const [magic, name] of REFUSED_MAGIC) if (startsWith(head, magic)) return name;
  if (head.length >= 3 && head[0] === 0x50 && head[1] >= 0x31 && head[1] <= 0x37 && /[ \t\r\n0-9]/.test(String.fromCharCode(head[2]))) {
    return "Netpbm (PBM/PGM/PPM/PAM)";
  }
  return null;
}

export function sniffContentType(bytes) {
  return CONTENT_TYPES[sniffFormat(bytes)] || null;
}

function extensionOf(name) {
  const dot = name.lastIndexOf(".");
  // As Python's Path.suffix: no suffix for "name", ".hidden" or "name."
  return dot > 0 && dot < name.length - 1 ? name.slice(dot).toLowerCase() : "";
}

/**
 * Decide on one file from its name, size and first bytes (a Uint8Array):
 * {contentType} to send it, or {reason} why it is skipped (the CLI's words).
 */
export function classify(name, size, head) {
  const extension = extensionOf(name);
  if (!IMAGE_EXTENSIONS.has(extension)) return { reason: `'${extension || "no extension"}' is not an image extension` };
  if (!size) return { reason: "empty file" };
  const contentType = sniffContentType(head);
  if (contentType) return { contentType };
  const refused = refusedFormat(head);
  return { reason: refused ? `${refused} images are not supported by the service` : "content is not a recognised image" };
}

/** classify() for a File: reads only its first bytes. */
export async function classifyFile(file) {
  let head = new Uint8Array(0);
  try {
    head = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer());
  } catch (err) {
    return { reason: `cannot read it: ${err.message || err}` };
  }
  return classify(file.name, file.size, head);
}
