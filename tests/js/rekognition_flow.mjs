// One collection's life through the AWS SDK for JavaScript v3 (tests/contract/test_js_sdk.py runs it).
//
//   node rekognition_flow.mjs COLLECTION_ID PROBE.jpg NAME=PHOTO.jpg...
//
// The endpoint, key pair and region come only from the environment (AWS_ENDPOINT_URL_REKOGNITION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION): the zero-code switch a Rekognition user makes.
// Prints one JSON object with what each call returned; the Python test asserts on it.
import { readFileSync } from "node:fs";
import {
  CreateCollectionCommand,
  DeleteCollectionCommand,
  DescribeCollectionCommand,
  IndexFacesCommand,
  ListFacesCommand,
  RekognitionClient,
  SearchFacesByImageCommand,
  paginateListFaces,
} from "@aws-sdk/client-rekognition";

const [collectionId, probe, ...enrol] = process.argv.slice(2);
// One attempt per call and bounded waits: a failure shows at once, never as a hang.
const client = new RekognitionClient({
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 5000, requestTimeout: 60000 },
});
const out = {};

const created = await client.send(new CreateCollectionCommand({ CollectionId: collectionId }));
out.created = { StatusCode: created.StatusCode, CollectionArn: created.CollectionArn };

out.indexed = [];
for (const item of enrol) {
  const [name, path] = item.split("=");
  const r = await client.send(
    new IndexFacesCommand({
      CollectionId: collectionId,
      Image: { Bytes: readFileSync(path) },
      ExternalImageId: name,
      MaxFaces: 1,
    }),
  );
  out.indexed.push({ name, faceIds: r.FaceRecords.map((f) => f.Face.FaceId) });
}

const found = await client.send(
  new SearchFacesByImageCommand({ CollectionId: collectionId, Image: { Bytes: readFileSync(probe) } }),
);
out.search = found.FaceMatches.map((m) => ({ name: m.Face.ExternalImageId, similarity: m.Similarity }));

// ListFaces by hand (NextToken) and through the SDK's paginator, two faces a page.
out.pages = [];
let token;
do {
  const page = await client.send(
    new ListFacesCommand({ CollectionId: collectionId, MaxResults: 2, NextToken: token }),
  );
  out.pages.push(page.Faces.map((f) => f.FaceId));
  token = page.NextToken;
} while (token);
out.paginated = [];
for await (const page of paginateListFaces({ client, pageSize: 2 }, { CollectionId: collectionId })) {
  out.paginated.push(page.Faces.map((f) => f.FaceId));
}

try {
  await client.send(new DescribeCollectionCommand({ CollectionId: `${collectionId}-missing` }));
  out.error = null;
} catch (err) {
  out.error = {
    name: err.name,
    status: err.$metadata?.httpStatusCode,
    message: err.message,
    Message: err.Message,
    fault: err.$fault,
  };
}

const deleted = await client.send(new DeleteCollectionCommand({ CollectionId: collectionId }));
out.deleted = deleted.StatusCode;
try {
  await client.send(new DescribeCollectionCommand({ CollectionId: collectionId }));
  out.afterDelete = "still there";
} catch (err) {
  out.afterDelete = err.name;
}
process.stdout.write(JSON.stringify(out) + "\n");
