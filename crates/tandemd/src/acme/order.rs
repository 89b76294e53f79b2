//! One ACME order (RFC 8555) with the HTTP-01 challenge, run with instant-acme by the
//! Raft leader (or a single node). Everything goes to the [`StateStore`]: the account (so
//! a new leader, or the next start, reuses it), the challenge answers (so whichever node
//! the ACME server reaches answers them) and the certificate with its key.

use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tandem_cluster::state::acme::{AcmeCertificate, AcmeCommand};
use tandem_config::acme::Acme;

use super::StateStore;

/// An order that takes longer than this is abandoned (and retried with backoff).
const ORDER_LIMIT: Duration = Duration::from_secs(120);

/// Orders the certificate `name` and proposes it; the challenge answers it published are
/// withdrawn whatever the result.
pub(super) async fn obtain(
    store: StateStore,
    name: String,
    spec: Acme,
    account: Option<String>,
) -> Result<(), String> {
    let mut tokens = Vec::new();
    let result = tokio::time::timeout(
        ORDER_LIMIT,
        run_order(&store, &name, &spec, account, &mut tokens),
    )
    .await
    .unwrap_or_else(|_| Err(format!("no certificate within {ORDER_LIMIT:?}")));
    if !tokens.is_empty() {
        let clear = AcmeCommand::ClearChallenges { tokens };
        if let Err(e) = store.write(clear).await {
            tracing::warn!(certificate = %name, error = %e, "ACME challenge answers not withdrawn");
        }
    }
    result.map_err(|e| format!("certificate {name} from {}: {e}", spec.directory))
}

async fn run_order(
    store: &StateStore,
    name: &str,
    spec: &Acme,
    stored: Option<String>,
    tokens: &mut Vec<String>,
) -> Result<(), String> {
    let account = account(store, spec, stored).await?;
    let identifiers: Vec<Identifier> = spec
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut challenges = Vec::new();
    {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("authorization is {other:?}")),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or("the ACME server offers no HTTP-01 challenge")?;
            let token = challenge.token.clone();
            let key_authorization = challenge.key_authorization().as_str().to_string();
            publish(store, &token, key_authorization).await?;
            tokens.push(token);
            challenges.push(challenge.url.clone());
            // Every node applies the answer within a heartbeat or two of the commit; the
            // ACME server may reach any of them through the VIP.
            tokio::time::sleep(store.propagation()).await;
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge ready: {e}"))?;
        }
    }
    tracing::info!(certificate = %name, challenges = challenges.len(), "ACME: challenges answered, waiting for validation");
    let status = order
        .poll_ready(&RetryPolicy::default())
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(format!("the order is {status:?} after validation"));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain_pem = order
        .poll_certificate(&RetryPolicy::default())
        .await
        .map_err(|e| format!("certificate download: {e}"))?;
    let loaded = tandem_tls::cert_from_pem(
        &format!("acme certificate {name}"),
        chain_pem.as_bytes(),
        key_pem.as_bytes(),
        SystemTime::now(),
    )
    .map_err(|e| format!("the issued certificate does not load: {e}"))?;
    let certificate = AcmeCertificate {
        chain_pem,
        key_pem,
        not_before_ms: super::wall_ms(loaded.not_before),
        not_after_ms: super::wall_ms(loaded.not_after),
    };
    let command = AcmeCommand::Certificate {
        name: name.to_string(),
        certificate,
    };
    store
        .write(command)
        .await
        .map_err(|e| format!("storing the certificate: {e}"))?;
    match store {
        StateStore::Cluster(_) => {
            tracing::info!(certificate = %name, "ACME certificate issued and replicated")
        }
        StateStore::Local(..) => {
            tracing::info!(certificate = %name, "ACME certificate issued and stored")
        }
    }
    Ok(())
}

/// The account stored for this directory, else a new one (stored for the next leader).
async fn account(
    store: &StateStore,
    spec: &Acme,
    stored: Option<String>,
) -> Result<Account, String> {
    if let Some(json) = stored {
        let credentials: AccountCredentials = serde_json::from_str(&json)
            .map_err(|e| format!("the stored ACME account does not decode: {e}"))?;
        return Account::builder_with_http(http_client(spec)?)
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("restoring the ACME account: {e}"));
    }
    let contact: Vec<&str> = spec.contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(http_client(spec)?)
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            spec.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("registering an ACME account: {e}"))?;
    let credentials =
        serde_json::to_string(&credentials).map_err(|e| format!("encoding the account: {e}"))?;
    let command = AcmeCommand::Account {
        directory: spec.directory.clone(),
        credentials,
    };
    store
        .write(command)
        .await
        .map_err(|e| format!("storing the ACME account: {e}"))?;
    Ok(account)
}

async fn publish(store: &StateStore, token: &str, key_authorization: String) -> Result<(), String> {
    let command = AcmeCommand::Challenge {
        token: token.to_string(),
        key_authorization,
    };
    store
        .write(command)
        .await
        .map_err(|e| format!("publishing the challenge answer: {e}"))
}

/// HTTPS to the ACME server: rustls with ring, trusting `ca` when set, else the system's
/// roots.
fn http_client(spec: &Acme) -> Result<Box<dyn instant_acme::HttpClient>, String> {
    let tls = tandem_tls::client_config(&tandem_tls::ClientTlsSpec {
        ca: spec.ca.clone(),
        verify: true,
        // hyper-rustls sets ALPN itself (and refuses a config that already has some).
        alpn: Vec::new(),
        client_cert: None,
    })
    .map_err(|e| format!("TLS to the ACME server: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, instant_acme::BodyWrapper<bytes::Bytes>>(connector);
    Ok(Box::new(client))
}
