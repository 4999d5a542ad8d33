// A small app the way a frontend team writes one: phones from the SDK state through selectors,
// credential status from a TanStack query (`["credential-status", userId]`, fetched from the hub
// with the client's token) kept fresh by the hub, and the connection badge. It records what the
// tests check in `window.__app`: renders per component, query fetches, connection history.
import { StrictMode, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider, useQuery } from '@tanstack/react-query';
import { credentialsByProvider } from '@statushub/client';
import {
  shallowEqual,
  StatushubProvider,
  useConnection,
  useStatushub,
  useStatushubClient,
  useStatusSyncInvalidation,
} from '@statushub/client/react';

const params = new URLSearchParams(location.search);
const app = (window.__app = { renders: {}, fetches: {}, connection: [], client: null });
const rendered = (name) => (app.renders[name] = (app.renders[name] ?? 0) + 1);

// staleTime: Infinity — only the hub's invalidations make these queries refetch.
const queryClient = new QueryClient({ defaultOptions: { queries: { staleTime: Infinity, retry: false } } });

function Phone({ id }) {
  const status = useStatushub((s) => s.phones[id]?.status ?? 'none');
  rendered(`phone:${id}`);
  return <li data-phone={id}>{status}</li>;
}

function Seq() {
  const seq = useStatushub((s) => s.seq);
  return <p id="seq">{seq}</p>;
}

function ConnectionBadge() {
  const { state, lastResume, error } = useConnection();
  useEffect(() => {
    app.connection.push(`${state}/${lastResume}`);
  }, [state, lastResume]);
  return <p id="connection" data-state={state} data-resume={lastResume} data-error={error?.kind ?? ''}>{state}</p>;
}

function CredentialQuery({ userId }) {
  const hub = useStatushubClient();
  const { data } = useQuery({
    queryKey: ['credential-status', userId],
    queryFn: async () => {
      app.fetches[userId] = (app.fetches[userId] ?? 0) + 1;
      const snapshot = await hub.fetchStatus();
      return snapshot.credentials[`binance:${userId}`] ?? null;
    },
  });
  const text = data === undefined ? 'loading' : data === null ? 'none' : data.success ? 'OK' : 'FAILED';
  return <li data-query={userId}>{text}</li>;
}

function BinanceUsers() {
  // The provider-level view: each user's entry under one provider.
  const entries = useStatushub((s) => credentialsByProvider(s).binance ?? [], shallowEqual);
  return (
    <ul id="binance">
      {entries.map((c) => (
        <li key={c.userId} data-user={c.userId}>{c.success ? 'OK' : 'FAILED'}</li>
      ))}
    </ul>
  );
}

function App() {
  useStatusSyncInvalidation(queryClient);
  const hub = useStatushubClient();
  app.client = hub;
  return (
    <>
      <ConnectionBadge />
      <Seq />
      <ul id="phones">
        <Phone id="wa-1" />
        <Phone id="wa-2" />
      </ul>
      <ul id="queries">
        <CredentialQuery userId="u1" />
        <CredentialQuery userId="u2" />
      </ul>
      <BinanceUsers />
    </>
  );
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <StatushubProvider url={params.get('hub')} token={params.get('token')} socketOptions={{ transports: ['websocket'] }}>
        <App />
      </StatushubProvider>
    </QueryClientProvider>
  </StrictMode>,
);
