// One slice of the Control Tower guard gate: the validator's own plugin code (from the
// @cdklabs/cdk-validator-cfnguard package the Python bindings ship) over a subset of its rule
// files and a list of templates. Reads {"package", "rules", "templates", "maxBuffer"} as JSON on
// stdin, writes the plugin's report ({success, violations}) as JSON on stdout.
'use strict';
const fs = require('fs');
const path = require('path');

const input = JSON.parse(fs.readFileSync(0, 'utf-8'));
const { CfnGuardValidator } = require(path.join(input.package, 'lib', 'plugin.js'));
const validator = new CfnGuardValidator({
  controlTowerRulesEnabled: false,
  rules: input.rules,
  maxBuffer: input.maxBuffer,
});
const report = validator.validate({ templatePaths: input.templates });
process.stdout.write(JSON.stringify(report));
