// A GraphQL over WebSocket server (`graphql-ws` on `ws`, subprotocol
// graphql-transport-ws) for wsherd's GraphQL tests. Schema:
//
//   type Query { hello: String!, echo(msg: String!): String! }
//   type Tick { seq: Int!, sentMs: Float! }
//   type Subscription {
//     ticks(count: Int!, intervalMs: Int!): Tick!  # count ticks, seq from 1,
//                                                  # sentMs = Date.now(), one
//                                                  # every intervalMs, then complete
//     greetings: String!                           # "hi", "bonjour", "hola", complete
//   }
//
// hello answers "world", echo answers msg. With --require-init-payload TOKEN the
// connection_init payload must be {"token": TOKEN}, else the server closes the
// socket (graphql-ws: 4403 Forbidden).
// Prints its port on stdout and exits by itself after LIFETIME seconds.
//
//     node graphql_ws_server.js [LIFETIME] [--port P] [--require-init-payload TOKEN]
"use strict";
const { WebSocketServer } = require("ws");
const { useServer } = require("graphql-ws/use/ws");
const {
  GraphQLSchema,
  GraphQLObjectType,
  GraphQLString,
  GraphQLInt,
  GraphQLFloat,
  GraphQLNonNull,
} = require("graphql");

function options(argv) {
  const o = { lifetime: 60, port: 0, token: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--port") o.port = Number(value());
    else if (a === "--require-init-payload") o.token = value();
    else if (!a.startsWith("--")) o.lifetime = Number(a);
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nonNull = (type) => new GraphQLNonNull(type);

const Tick = new GraphQLObjectType({
  name: "Tick",
  fields: { seq: { type: nonNull(GraphQLInt) }, sentMs: { type: nonNull(GraphQLFloat) } },
});

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: "Query",
    fields: {
      hello: { type: nonNull(GraphQLString), resolve: () => "world" },
      echo: {
        type: nonNull(GraphQLString),
        args: { msg: { type: nonNull(GraphQLString) } },
        resolve: (_, { msg }) => msg,
      },
    },
  }),
  subscription: new GraphQLObjectType({
    name: "Subscription",
    fields: {
      ticks: {
        type: nonNull(Tick),
        args: { count: { type: nonNull(GraphQLInt) }, intervalMs: { type: nonNull(GraphQLInt) } },
        subscribe: async function* (_, { count, intervalMs }) {
          const start = Date.now();
          for (let seq = 1; seq <= count; seq++) {
            // tick seq is due at start + (seq-1)*intervalMs (a steady schedule)
            await sleep(Math.max(0, start + (seq - 1) * intervalMs - Date.now()));
            yield { seq, sentMs: Date.now() };
          }
        },
        resolve: (tick) => tick,
      },
      greetings: {
        type: nonNull(GraphQLString),
        subscribe: async function* () {
          for (const hi of ["hi", "bonjour", "hola"]) yield hi;
        },
        resolve: (hi) => hi,
      },
    },
  }),
});

const opt = options(process.argv.slice(2));
const wss = new WebSocketServer({ host: "127.0.0.1", port: opt.port });
useServer(
  {
    schema,
    onConnect: (ctx) =>
      opt.token === null || (ctx.connectionParams || {}).token === opt.token,
  },
  wss,
);
wss.on("listening", () => console.log(wss.address().port));
setTimeout(() => process.exit(0), opt.lifetime * 1000);
