#!/usr/bin/env node
console.log("tether-gateway")
