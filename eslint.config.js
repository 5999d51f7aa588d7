// @ts-check
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import { importX } from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "client/dist/", "data/", "bench/results/", "client/generated/", "node_modules/"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    plugins: { "import-x": importX },
    settings: { "import-x/extensions": [".ts", ".js"], "import-x/resolver-next": [createTypeScriptImportResolver()] },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // Imports run one way, from HTTP down to storage; a cycle means a room leaks into another.
      "import-x/no-cycle": "error",
      "import-x/no-self-import": "error",
      "import-x/no-useless-path-segments": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-explicit-any": "error",
    },
  },
  {
    // The dashboard's browser module: tsc checks its names against the DOM (server/ui/tsconfig.json).
    files: ["server/ui/**/*.js"],
    rules: { "no-undef": "off" },
  },
  prettier,
);
