/**
 * The overload experiment: open-loop arrivals above the fleet's capacity, in virtual time on the
 * simulated engine, without a router queue, with instant 503s and with the router queue
 * (`src/flow/overload.ts`; results in docs/results.md).
 *
 *   deno task overload                       # flood scenario: 2.6x capacity, every mode
 *   deno task overload --scenario priority   # the interactive class alone fits
 *
 * The flags and their checks are in `src/flow/overload_cli.ts` (`parseFlags(FLAGS, ...)`).
 *
 * @module
 */

import { main } from "../src/flow/overload_cli.ts";

export { FLAGS } from "../src/flow/overload_cli.ts";

if (import.meta.main) Deno.exit(main(Deno.args));
