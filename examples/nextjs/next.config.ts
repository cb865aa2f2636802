import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // chatkit-engine is a native addon: load it with Node's require at run
  // time instead of bundling it.
  serverExternalPackages: ["chatkit-engine"],
};

export default nextConfig;
