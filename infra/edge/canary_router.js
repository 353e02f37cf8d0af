// Connection-level canary router: a CloudFront Function (cloudfront-js-2.0, viewer request) on
// the WebSocket edge. A WebSocket connection is opened by one HTTP GET (the upgrade handshake),
// so deciding here decides for the connection's whole life: the rewritten request reaches the
// API's `canary` stage (integrations on each function's `green` alias), the others keep `live`.
//
// The share is the KeyValueStore key `canary_share`: a decimal integer percent, 0..100, written
// by the release's SetWeights, Finalize and Rollback tasks (contracts/canary.py). A missing key,
// an unreadable value or a failed read sends the handshake to `live`: the edge never moves a
// client to green unless a release asked for it.
import cf from 'cloudfront';

const kvs = cf.kvs();
const SHARE_KEY = 'canary_share';
const LIVE_PATHS = { '/live': true, '/live/': true };
const CANARY_PATH = '/canary';

async function share() {
    try {
        const text = String(await kvs.get(SHARE_KEY, { format: 'string' })).trim();
        if (!/^[0-9]{1,3}$/.test(text)) {
            return 0;
        }
        const percent = parseInt(text, 10);
        return percent > 100 ? 100 : percent;
    } catch (err) {
        return 0;
    }
}

async function handler(event) {
    const request = event.request;
    if (!LIVE_PATHS[request.uri]) {
        return request;
    }
    const percent = await share();
    if (percent > 0 && Math.random() * 100 < percent) {
        request.uri = CANARY_PATH;
    }
    return request;
}
