console.log("tether device")
