// Images travel with the last user turn. Models get them as image content parts; S3 images are
// handed out as short-lived presigned URLs, so model endpoints never need AWS credentials.
import type { Dependencies } from '../dependencies';
import type { ContentPart, ModelMessage } from '../ports';
import type { ChatMessage, NormalizedInput } from '../types';

const PRESIGN_SECONDS = 3600;

/** The messages with the images added to the last user message as image_url parts. */
export function attachImages(messages: ChatMessage[], images: readonly string[] | undefined): ModelMessage[] {
  if (!images || images.length === 0) return messages;
  const last = messages.map((m) => m.role).lastIndexOf('user');
  return messages.map((m, i): ModelMessage => {
    if (i !== last) return m;
    const parts: ContentPart[] = [{ type: 'text', text: m.content }, ...images.map((url) => ({ type: 'image_url' as const, image_url: { url } }))];
    return { role: 'user', content: parts };
  });
}

/** The input with every s3:// image replaced by a presigned https URL a model endpoint can fetch. */
export async function withResolvedImages(deps: Dependencies, input: NormalizedInput): Promise<NormalizedInput> {
  if (!input.images?.some((i) => i.startsWith('s3://'))) return input;
  const images = await Promise.all(
    input.images.map(async (ref) => {
      const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(ref);
      return m ? deps.blobs.presign(m[1]!, m[2]!, PRESIGN_SECONDS) : ref;
    }),
  );
  return { ...input, images };
}
