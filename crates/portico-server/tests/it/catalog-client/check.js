// Drives Backstage's own @backstage/catalog-client against a running Portico.
// Usage: node check.js <portico base URL> <URL of a readable catalog-info.yaml>
// Exits non-zero on the first difference.
'use strict';
const assert = require('node:assert/strict');
const { CatalogClient } = require('@backstage/catalog-client');

const [base, locationUrl] = process.argv.slice(2);
const client = new CatalogClient({
  discoveryApi: { getBaseUrl: async () => `${base}/api/catalog` },
  fetchApi: { fetch },
});
const names = entities => entities.map(entity => entity && entity.metadata.name);

async function main() {
  const components = await client.getEntities({ filter: { kind: 'Component' }, fields: ['metadata.name'] });
  assert.deepEqual(names(components.items).sort(), ['billing', 'checkout', 'ledger']);

  const ordered = await client.getEntities({
    filter: { kind: 'Component' },
    order: { field: 'metadata.name', order: 'desc' },
  });
  assert.deepEqual(names(ordered.items), ['ledger', 'checkout', 'billing']);

  const paged = await client.getEntities({ filter: { kind: 'Component' }, limit: 2, offset: 1 });
  assert.equal(paged.items.length, 2);

  const billing = await client.getEntityByRef('component:default/billing');
  assert.equal(billing.metadata.name, 'billing');
  assert.ok(billing.relations.some(r => r.type === 'ownedBy' && r.targetRef === 'group:default/team-a'));
  assert.equal(await client.getEntityByRef('component:default/nope'), undefined);
  const byName = await client.getEntityByName({ kind: 'Component', namespace: 'default', name: 'billing' });
  assert.equal(byName.metadata.uid, billing.metadata.uid);

  // Cursor paging, forwards, through the GET form.
  let page = await client.queryEntities({
    filter: { kind: 'component' },
    limit: 2,
    orderFields: { field: 'metadata.name', order: 'asc' },
  });
  assert.equal(page.totalItems, 3);
  assert.deepEqual(names(page.items), ['billing', 'checkout']);
  page = await client.queryEntities({ cursor: page.pageInfo.nextCursor, limit: 2 });
  assert.deepEqual(names(page.items), ['ledger']);
  assert.equal(page.pageInfo.nextCursor, undefined);
  const back = await client.queryEntities({ cursor: page.pageInfo.prevCursor, limit: 2 });
  assert.deepEqual(names(back.items), ['billing', 'checkout']);

  // Full-text filtering.
  const text = await client.queryEntities({
    fullTextFilter: { term: 'led', fields: ['metadata.name'] },
    orderFields: { field: 'metadata.name', order: 'asc' },
  });
  assert.deepEqual(names(text.items), ['ledger']);

  // Predicate queries go through POST, and their cursors page through POST too.
  let predicate = await client.queryEntities({
    query: { $all: [{ kind: 'component' }, { $not: { 'spec.lifecycle': 'experimental' } }] },
    orderFields: { field: 'metadata.name', order: 'asc' },
    limit: 1,
  });
  assert.deepEqual(names(predicate.items), ['billing']);
  predicate = await client.queryEntities({ cursor: predicate.pageInfo.nextCursor, limit: 1 });
  assert.deepEqual(names(predicate.items), ['checkout']);

  const facets = await client.getEntityFacets({ facets: ['spec.type', 'kind'], filter: { kind: 'Component' } });
  assert.deepEqual(facets.facets['kind'], [{ value: 'Component', count: 3 }]);
  assert.equal(facets.facets['spec.type'].reduce((sum, f) => sum + f.count, 0), 3);

  const refs = await client.getEntitiesByRefs({
    entityRefs: ['component:default/ledger', 'component:default/nope', 'user:default/alice'],
  });
  assert.deepEqual(names(refs.items), ['ledger', undefined, 'alice']);

  const ancestry = await client.getEntityAncestors({ entityRef: 'component:default/billing' });
  assert.equal(ancestry.rootEntityRef, 'component:default/billing');
  assert.ok(ancestry.items.length >= 2);

  const valid = await client.validateEntity(
    { apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name: 'ok' },
      spec: { type: 'service', lifecycle: 'production', owner: 'team-a' } },
    'url:https://example.com/catalog-info.yaml',
  );
  assert.equal(valid.valid, true);
  const invalid = await client.validateEntity(
    { apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name: 'not ok!' }, spec: {} },
    'url:https://example.com/catalog-info.yaml',
  );
  assert.equal(invalid.valid, false);
  assert.ok(invalid.errors.length > 0);

  await client.refreshEntity('component:default/billing');

  const dryRun = await client.addLocation({ type: 'url', target: locationUrl, dryRun: true });
  assert.equal(dryRun.exists, false);
  assert.ok(dryRun.entities.some(entity => entity.metadata.name === 'remote'));
  const added = await client.addLocation({ type: 'url', target: locationUrl });
  assert.equal(added.location.target, locationUrl);
  const locations = await client.getLocations();
  assert.ok(locations.items.some(location => location.id === added.location.id));
  const byId = await client.getLocationById(added.location.id);
  assert.equal(byId.target, locationUrl);
  const byRef = await client.getLocationByRef(`url:${locationUrl}`);
  assert.equal(byRef.id, added.location.id);
  await client.removeLocationById(added.location.id);
  assert.equal(await client.getLocationById(added.location.id), undefined);

  const analysis = await client.analyzeLocation({ location: { type: 'url', target: locationUrl } });
  assert.ok(analysis.existingEntityFiles.length > 0);

  console.log('catalog-client: every check passed');
}

main().catch(error => {
  console.error(error);
  process.exit(1);
});
