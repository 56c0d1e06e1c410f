import { bool, str, type ServiceDefinition } from '../soap/schema.js';

/**
 * The instance resolver, the VBS paper's VBS_Nimbus as its own service: the
 * front asks it where a cloud's instance runs. Only the front may call it
 * (mutual TLS); the front names the caller whose instance it must be.
 */
export const INSTANCE_RESOLVER_SERVICE: ServiceDefinition = {
  name: 'InstanceResolver',
  namespace: 'urn:vbs:2026:instance-resolver',
  path: '/instance-resolver',
  doc: 'VBS instance resolver: finds the VMM host and VM of a cloud instance (Nimbus, OpenStack, an operator\'s map).',
  types: {},
  operations: {
    DescribeResolvers: {
      doc: 'The resolvers this service runs.',
      input: [],
      output: [str('resolver', { many: true })],
    },
    ResolveInstance: {
      doc: 'Asks one resolver where instanceId runs, if it is owner\'s (any owner\'s when admin is true). found is false when the resolver does not know it for that owner.',
      input: [
        str('instanceId'),
        str('owner', { doc: 'the VBS user (certificate name) the instance must belong to' }),
        str('resolver'),
        bool('admin', { optional: true, doc: 'the caller is a VBS administrator: the instance may be anyone\'s' }),
      ],
      output: [
        bool('found'),
        str('vmmHost', { optional: true }),
        str('vmId', { optional: true }),
        str('state', { optional: true, doc: "the cloud's own word for the instance's state" }),
        bool('running', { optional: true }),
      ],
    },
  },
};
