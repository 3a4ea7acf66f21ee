// The interoperability check of version 2: a device written from PROTOCOL.md alone
// (test/interop/device.mjs) against the real gateway's command line. The tests live in
// test/interop/; run-all.mjs picks up node:test files only under test/devs (*.test.mjs),
// gateway-peer/dist/test and test/e2e/dist, so this file brings them into `npm test`.
// @lane node (test/run-all.mjs): no simulator, no DeviceScript build; runs beside the simulator lane
import "../interop/interop.test.mjs"
