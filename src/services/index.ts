import type { ServiceDefinition } from '../soap/schema.js';
import { INSTANCE_RESOLVER_SERVICE } from './instance-resolver.js';
import { VBS_SERVICE } from './vbs.js';
import { VMM_DELEGATE_SERVICE } from './vmm-delegate.js';
import { VOLUME_DELEGATE_SERVICE } from './volume-delegate.js';

/** Every service VBS publishes, with its WSDL file name and example address. */
export const SERVICES: readonly { file: string; def: ServiceDefinition; defaultUrl: string }[] = [
  { file: 'vbs.wsdl', def: VBS_SERVICE, defaultUrl: 'https://localhost:8443/vbs' },
  { file: 'volume-delegate.wsdl', def: VOLUME_DELEGATE_SERVICE, defaultUrl: 'https://localhost:8444/volume-delegate' },
  { file: 'vmm-delegate.wsdl', def: VMM_DELEGATE_SERVICE, defaultUrl: 'https://localhost:8445/vmm-delegate' },
  { file: 'instance-resolver.wsdl', def: INSTANCE_RESOLVER_SERVICE, defaultUrl: 'https://localhost:8446/instance-resolver' },
];
